//! Binary `.evtx` files, through the `evtx` crate. Each record renders to event XML,
//! which goes through the same mapping as exported XML.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use evtx::EvtxParser;
use tracing::warn;

use crate::event::{Format, LogEvent};
use crate::group::Location;
use crate::parse::windows::parse_event_xml;
use crate::stats::inc;
use crate::stream::Stream;

/// Reads every record of an EVTX file. Returns false when the consumer has gone.
pub(crate) fn read_evtx(path: &Path, stream: &mut Stream) -> bool {
    // A panic inside a third-party binary parser must not take the intake down: the file
    // is counted as unreadable and the rest of the input goes on.
    match catch_unwind(AssertUnwindSafe(|| read_records(path, stream))) {
        Ok(ok) => ok,
        Err(_) => {
            stream.lost(0, "EVTX parser panicked");
            true
        }
    }
}

fn read_records(path: &Path, stream: &mut Stream) -> bool {
    let mut parser = match EvtxParser::from_path(path) {
        Ok(p) => p,
        Err(e) => {
            inc(&stream.counters().unreadable);
            warn!(path = %stream.origin, reason = %e, "Cannot read EVTX file.");
            return true;
        }
    };
    let mut n = 0u64;
    for rec in parser.records() {
        n += 1;
        inc(&stream.counters().read);
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                inc(&stream.counters().skipped);
                warn!(path = %stream.origin, line = n, reason = %e, "Skipped malformed EVTX record.");
                continue;
            }
        };
        match parse_event_xml(&rec.data, Format::Evtx) {
            Ok(ev) => {
                let loc = Location::line(stream.origin.clone(), rec.event_record_id);
                if !stream.event(ev, loc) {
                    return false;
                }
            }
            Err(e) => {
                inc(&stream.counters().skipped);
                warn!(path = %stream.origin, line = n, reason = %e, "Skipped EVTX record with unusable XML.");
            }
        }
    }
    true
}

/// Parses the records of an EVTX file held in memory: `Err` when the file header is
/// unusable, otherwise one result per record (a malformed record is an `Err` with the
/// reason, and the records after it are still read).
pub fn parse_evtx(buffer: Vec<u8>) -> Result<Vec<Result<LogEvent, String>>, String> {
    let run = || -> Result<Vec<Result<LogEvent, String>>, String> {
        let mut parser = EvtxParser::from_buffer(buffer).map_err(|e| e.to_string())?;
        Ok(parser
            .records()
            .map(|rec| {
                let rec = rec.map_err(|e| e.to_string())?;
                parse_event_xml(&rec.data, Format::Evtx).map_err(|e| e.to_string())
            })
            .collect())
    };
    catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|_| Err("EVTX parser panicked".to_owned()))
}
