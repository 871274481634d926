//! Composed traffic (see [`crate::compose`]): benign web requests of the training
//! application families in every web format, the held-out docs/forum family for
//! validation, benign system logs, and sshd password-guessing bursts (one in five ending in a
//! successful login).

use crate::build::{Sample, Split, Take};
use crate::compose::{benign_request, benign_syslog, ssh_brute_force, WebFamily};
use crate::label::fine;
use crate::rng::Rng;
use crate::web::WebFormat;

/// How many composed samples of each kind (before de-duplication).
#[derive(Debug, Clone, Copy)]
pub struct ComposedCounts {
    pub web_train: usize,
    pub web_validation: usize,
    pub syslog_train: usize,
    pub syslog_validation: usize,
    pub ssh_bursts_train: usize,
    pub ssh_bursts_validation: usize,
}

impl Default for ComposedCounts {
    fn default() -> Self {
        ComposedCounts {
            web_train: 440,
            web_validation: 330,
            syslog_train: 240,
            syslog_validation: 110,
            ssh_bursts_train: 60,
            ssh_bursts_validation: 20,
        }
    }
}

const FORMATS: [WebFormat; 4] = [
    WebFormat::Combined,
    WebFormat::Nginx,
    WebFormat::W3c,
    WebFormat::Common,
];

pub fn read(seed: u64, counts: &ComposedCounts, out: &mut Vec<Sample>) {
    let web = |i: usize, family: WebFamily, split: Split, out: &mut Vec<Sample>| {
        let key = format!("composed/web/{}/{i}", family.name());
        let mut rng = Rng::for_item(seed, &key);
        let req = benign_request(family, &mut rng);
        // Every format in turn, so each one gets its share of benign traffic.
        let format = FORMATS[i % FORMATS.len()];
        let evidence = format!(
            "Ordinary {} {} from {} ({}), status {}; no payload in path, query or headers.",
            req.method,
            crate::label::clip(&req.target, 90),
            req.client,
            crate::label::clip(&req.user_agent, 40),
            req.status
        );
        out.push(Sample {
            text: req.render(format, &mut rng),
            key,
            fine_type: fine::BENIGN,
            rule: format!("composed-benign-{}", family.name()),
            source: "composed-web",
            split,
            status: Some(req.status),
            evidence,
            take: Take::Single,
            rendered: None,
        });
    };
    for i in 0..counts.web_train {
        let family = WebFamily::TRAIN[i % WebFamily::TRAIN.len()];
        web(i, family, Split::Train, out);
    }
    for i in 0..counts.web_validation {
        web(i, WebFamily::DocsForum, Split::Validation, out);
    }
    for i in 0..counts.syslog_train + counts.syslog_validation {
        let key = format!("composed/syslog/{i}");
        let mut rng = Rng::for_item(seed, &key);
        let split = if i < counts.syslog_train {
            Split::Train
        } else {
            Split::Validation
        };
        out.push(Sample {
            text: benign_syslog(&mut rng),
            key,
            fine_type: fine::BENIGN,
            rule: "composed-benign-syslog".into(),
            source: "composed-syslog",
            split,
            status: None,
            evidence: String::new(),
            take: Take::Single,
            rendered: None,
        });
    }
    for i in 0..counts.ssh_bursts_train + counts.ssh_bursts_validation {
        let split = if i < counts.ssh_bursts_train {
            Split::Train
        } else {
            Split::Validation
        };
        let key = format!("composed/ssh-brute-force/{i}");
        let mut rng = Rng::for_item(seed, &key);
        let n = rng.range(6, 60) as usize;
        // One burst in five ends in a successful login (its own draw, so the others
        // keep their text).
        let success = Rng::for_item(seed, &format!("{key}/success")).chance(20);
        let (fine_type, rule) = if success {
            (
                fine::SSH_BRUTE_FORCE_SUCCESS,
                "composed-ssh-brute-force-success",
            )
        } else {
            (fine::SSH_BRUTE_FORCE, "composed-ssh-brute-force")
        };
        out.push(Sample {
            text: ssh_brute_force(n, success, &mut rng),
            key,
            fine_type,
            rule: rule.into(),
            source: "composed-syslog",
            split,
            status: None,
            evidence: String::new(),
            take: Take::Incidents,
            rendered: None,
        });
    }
}
