//! JSON POST to a webhook, with a `text` field that Slack and Microsoft Teams incoming
//! webhooks display as the message.

use std::time::Duration;

use serde_json::json;

use super::{SendError, Transport};
use crate::alert::Alert;

/// The request body: `text` for chat, `verdict` with the verdict as `opensoc analyze`
/// writes it, `level` (Sigma) for routing rules.
pub fn body(alert: &Alert<'_>) -> Vec<u8> {
    json!({
        "text": chat_text(alert),
        "level": alert.level.sigma(),
        "verdict": alert.verdict,
    })
    .to_string()
    .into_bytes()
}

/// A short message in the markup Slack and Teams share (`*bold*` is bold in Slack; Teams
/// shows the asterisks). Log-derived text has `&`, `<` and `>` escaped, so a log line
/// cannot mention `<!channel>` or plant a link.
pub fn chat_text(alert: &Alert<'_>) -> String {
    let v = alert.verdict;
    let mut text = format!(
        "*[{}] {}*",
        alert.level.sigma().to_uppercase(),
        escape(&alert.summary())
    );
    if let Some(name) = alert.technique_full_name() {
        text.push_str(&format!("\nATT&amp;CK: {}", escape(&name)));
        if let Some(t) = alert.tactic {
            text.push_str(&format!(" ({})", escape(t.name)));
        }
    }
    if let Some(e) = &v.evidence {
        text.push_str(&format!("\nEvidence: {}", escape(e)));
    }
    if let Some(r) = &v.recommendation {
        text.push_str(&format!("\nRecommendation: {}", escape(r)));
    }
    text
}

/// Slack's three control characters (Teams renders the entities as the characters).
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub(crate) struct Webhook {
    url: String,
    agent: ureq::Agent,
}

impl Webhook {
    pub(crate) fn new(url: String, timeout: Duration) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeout)
            .timeout(timeout)
            // A POST is not replayed to wherever a redirect points.
            .redirects(0)
            .build();
        Webhook { url, agent }
    }
}

impl Transport for Webhook {
    fn send(&mut self, payload: &[u8]) -> Result<(), SendError> {
        let result = self
            .agent
            .post(&self.url)
            .set("Content-Type", "application/json")
            .send_bytes(payload);
        match result {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(code, _)) if code == 429 || code >= 500 => {
                Err(SendError::Retry(format!("HTTP {code}")))
            }
            Err(ureq::Error::Status(code, _)) => Err(SendError::Fatal(format!("HTTP {code}"))),
            // The error names the URL, which may hold the hook's secret: keep only the kind.
            Err(ureq::Error::Transport(t)) => Err(SendError::Retry(format!(
                "{}{}",
                t.kind(),
                t.message().map(|m| format!(": {m}")).unwrap_or_default()
            ))),
        }
    }

    fn gives_up(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::tests::brute_force;
    use opensoc_ingest::Timestamp;

    #[test]
    fn text_is_escaped_and_body_carries_the_verdict() {
        let mut v = brute_force();
        v.evidence = Some("<!channel> see <http://evil|here> & more".into());
        let alert = Alert::new(&v, Timestamp(0));
        let text = chat_text(&alert);
        assert!(text.starts_with(
            "*[HIGH] SSH Brute Force Attack (T1110.001, high, risk 75) at auth.log:5-10*"
        ));
        assert!(text.contains("Evidence: &lt;!channel&gt; see &lt;http://evil|here&gt; &amp; more"));
        assert!(!text.contains('<'));
        let body: serde_json::Value = serde_json::from_slice(&body(&alert)).unwrap();
        assert_eq!(body["text"], text.as_str());
        assert_eq!(body["verdict"]["id"], "auth.log:5-10");
        assert_eq!(body["level"], "high");
    }
}
