//! Windows event logs. mdecrevoisier/EVTX-to-MITRE-Attack: recordings of attack
//! techniques, one `.evtx` per technique, the file name listing the event ids that show
//! the attack (`ID4688-4698 ...evtx`); only those events are labelled, by event id, and
//! the background events of the recording are left out. omerbenamram/evtx `samples/`:
//! ordinary activity of real machines, benign except the event ids the attack rule uses.
//! Whole files are held out as validation.

use std::collections::BTreeMap;
use std::path::Path;

use super::{files, rel};
use crate::build::{Rendered, Sample, Split, Take};
use crate::error::Problem;
use crate::label::fine;
use crate::render::evtx_entries;
use crate::rng::hash;

pub const MITRE_DIR: &str = "evtx-to-mitre";
pub const SAMPLES_DIR: &str = "evtx-samples";

/// Rule `evtx-event-id`: the threat type an attack recording's named event id shows.
pub fn event_label(id: u32) -> Option<&'static str> {
    match id {
        4625 => Some(fine::WIN_FAILED_LOGIN),
        4648 => Some(fine::WIN_EXPLICIT_CREDS),
        4698 => Some(fine::WIN_SCHEDULED_TASK),
        4688 => Some(fine::WIN_PROCESS),
        4697 | 7045 => Some(fine::WIN_SERVICE),
        4720 => Some(fine::WIN_USER_CREATED),
        _ => None,
    }
}

/// Event ids named in a recording's file name: `ID4688,4698-...`, `ID7045-4697-...`.
pub fn ids_in_name(name: &str) -> Vec<u32> {
    let Some(rest) = name.strip_prefix("ID") else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    for part in rest.split([',', '-', ' ']) {
        match part.parse::<u32>() {
            Ok(id) if (1..=65_535).contains(&id) => ids.push(id),
            _ => break,
        }
    }
    ids
}

/// The event id an entry's text starts with (`EventID: 4688`).
pub fn entry_event_id(text: &str) -> Option<u32> {
    let rest = &text[text.find("EventID: ")? + 9..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// One file in four, by a hash of its path, is held out.
fn split_of(key: &str) -> Split {
    if hash(key) & 3 == 0 {
        Split::Validation
    } else {
        Split::Train
    }
}

fn evtx_files(root: &Path) -> Vec<std::path::PathBuf> {
    files(root, &|p| {
        p.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("evtx"))
    })
}

fn entries_or_report(
    root: &Path,
    path: &Path,
    problems: &mut Vec<Problem>,
) -> Vec<opensoc_ingest::Entry> {
    match evtx_entries(path) {
        Ok(e) => e,
        Err(reason) => {
            problems.push(Problem {
                path: rel(root, path),
                line: 0,
                reason,
            });
            Vec::new()
        }
    }
}

fn sample(
    key: String,
    e: &opensoc_ingest::Entry,
    fine_type: &'static str,
    rule: &str,
    source: &'static str,
    split: Split,
    evidence: String,
) -> Sample {
    Sample {
        key,
        text: String::new(),
        fine_type,
        rule: rule.to_owned(),
        source,
        split,
        status: None,
        evidence,
        take: Take::Single,
        rendered: Some(Rendered {
            input: e.text.clone(),
            format: e.format.name(),
            events: e.events,
        }),
    }
}

/// The facts of an event worth quoting: its description and the command line, service
/// or task it names.
fn key_facts(text: &str) -> String {
    let mut parts = Vec::new();
    if let Some(d) = text
        .lines()
        .find_map(|l| l.strip_prefix("Description: "))
        .or_else(|| text.lines().find_map(|l| l.strip_prefix("Provider: ")))
    {
        parts.push(d.to_owned());
    }
    for field in [
        "CommandLine=",
        "ServiceName=",
        "ImagePath=",
        "TaskName=",
        "TargetUserName=",
        "SubjectUserName=",
    ] {
        if let Some(i) = text.find(field) {
            let v: String = text[i..]
                .chars()
                .take_while(|c| *c != ';' && *c != '\n')
                .collect();
            parts.push(v);
            if parts.len() >= 3 {
                break;
            }
        }
    }
    crate::label::clip(&parts.join("; "), 180)
}

/// Processes Windows starts on its own; a 4688 of one of these in an attack recording is
/// background, not the attack (found in the audit, docs/DATA.md).
const BACKGROUND_IMAGES: &[&str] = &[
    "conhost.exe",
    "ctfmon.exe",
    "drvinst.exe",
    "svchost.exe",
    "taskhostw.exe",
    "runtimebroker.exe",
    "searchindexer.exe",
    "searchprotocolhost.exe",
    "searchfilterhost.exe",
    "wermgr.exe",
    "werfault.exe",
    "wmiprvse.exe",
    "dllhost.exe",
    "smartscreen.exe",
    "sppsvc.exe",
    "sppextcomobj.exe",
    "mpcmdrun.exe",
    "trustedinstaller.exe",
    "tiworker.exe",
    "audiodg.exe",
    "backgroundtaskhost.exe",
    "msmpeng.exe",
    "compattelrunner.exe",
    "musnotification.exe",
    "sihclient.exe",
    "dismhost.exe",
    "filecoauth.exe",
    "onedrive.exe",
    "monitorknowledgediscovery",
    "senseir.exe",
    "mssense.exe",
    "usoclient.exe",
    "wuauclt.exe",
    "microsoftedgeupdate.exe",
    "sdiagnhost.exe",
    "consent.exe",
    "mmc.exe -embedding",
    "winsxs\\",
];

fn is_background_process(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    // The image and its command line: a script host is background only by its script.
    let value = |key: &str| -> String {
        t.find(key)
            .map(|i| {
                t[i..]
                    .chars()
                    .take_while(|c| *c != ';' && *c != '\n')
                    .collect()
            })
            .unwrap_or_default()
    };
    let seen = format!("{} {}", value("newprocessname="), value("commandline="));
    BACKGROUND_IMAGES.iter().any(|b| seen.contains(b))
}

/// Per-file cap of events per event id: recordings repeat the same event many times.
const PER_ID: usize = 4;
/// Normal activity repeats even more; fewer per id keeps the benign side varied.
const PER_ID_NORMAL: usize = 2;

pub fn read_attacks(root: &Path, _seed: u64, out: &mut Vec<Sample>, problems: &mut Vec<Problem>) {
    for path in evtx_files(root) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ids = ids_in_name(&name);
        if !ids.iter().any(|id| event_label(*id).is_some()) {
            continue;
        }
        let key = rel(root, &path);
        let split = split_of(&key);
        let mut per_id: BTreeMap<u32, usize> = BTreeMap::new();
        for (i, e) in entries_or_report(root, &path, problems).iter().enumerate() {
            let Some(id) = entry_event_id(&e.text) else {
                continue;
            };
            let Some(fine_type) = ids.contains(&id).then(|| event_label(id)).flatten() else {
                continue; // background event of the recording
            };
            if id == 4688 && is_background_process(&e.text) {
                continue;
            }
            let n = per_id.entry(id).or_insert(0);
            if *n >= PER_ID {
                continue;
            }
            *n += 1;
            let evidence = format!("Event {id}: {}", key_facts(&e.text));
            out.push(sample(
                format!("{key}#{i}"),
                e,
                fine_type,
                "evtx-event-id",
                "evtx-to-mitre",
                split,
                evidence,
            ));
        }
    }
}

pub fn read_normal(root: &Path, _seed: u64, out: &mut Vec<Sample>, problems: &mut Vec<Problem>) {
    for path in evtx_files(root) {
        let key = rel(root, &path);
        let split = split_of(&key);
        let mut per_id: BTreeMap<u32, usize> = BTreeMap::new();
        for (i, e) in entries_or_report(root, &path, problems).iter().enumerate() {
            let Some(id) = entry_event_id(&e.text) else {
                continue;
            };
            // Ids the attack rule labels are left out: a normal 4688 or 4625 and an
            // attack's look alike to the model without context.
            if event_label(id).is_some() || e.incident.is_some() {
                continue;
            }
            let n = per_id.entry(id).or_insert(0);
            if *n >= PER_ID_NORMAL {
                continue;
            }
            *n += 1;
            let evidence = format!(
                "Routine event {id} of normal system activity: {}",
                key_facts(&e.text)
            );
            out.push(sample(
                format!("{key}#{i}"),
                e,
                fine::BENIGN,
                "evtx-normal-activity",
                "evtx-samples",
                split,
                evidence,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_recording_names() {
        assert_eq!(
            ids_in_name("ID4688,4698,4699,5145,4624-ATexec remote.evtx"),
            vec![4688, 4698, 4699, 5145, 4624]
        );
        assert_eq!(
            ids_in_name("ID7045-4697-SMBexec service registration.evtx"),
            vec![7045, 4697]
        );
        assert_eq!(ids_in_name("ID4720-Local user created.evtx"), vec![4720]);
        assert!(ids_in_name("Sysmon-DNS.evtx").is_empty());
        assert_eq!(entry_event_id("EventID: 4688\nTimestamp: x"), Some(4688));
        assert_eq!(entry_event_id("no id"), None);
    }
}
