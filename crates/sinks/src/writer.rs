//! Writers of the SIEM formats, and the small trait every verdict output implements.

use std::io::Write;

use opensoc_report::VerdictWriter;
use opensoc_verdict::Verdict;

use crate::alert::Alert;
use crate::{cef, ecs, ocsf, SinkError};

/// Where verdicts go: standard output in some format, a forwarder, or several.
pub trait VerdictSink {
    /// Takes one verdict.
    fn write(&mut self, verdict: &Verdict) -> Result<(), SinkError>;
    /// Flushes what is buffered; called once after the last verdict.
    fn finish(&mut self) -> Result<(), SinkError>;
}

/// The report crate's JSON lines, table and CSV.
impl<W: Write> VerdictSink for VerdictWriter<W> {
    fn write(&mut self, verdict: &Verdict) -> Result<(), SinkError> {
        Ok(VerdictWriter::write(self, verdict)?)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(VerdictWriter::finish(self)?)
    }
}

/// A SIEM format: one event per verdict, one line per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiemFormat {
    /// Elastic Common Schema JSON.
    Ecs,
    /// OCSF Detection Finding JSON.
    Ocsf,
    /// ArcSight CEF.
    Cef,
}

impl SiemFormat {
    /// The event for one alert, as one line without its terminator.
    pub fn render(self, alert: &Alert<'_>) -> String {
        match self {
            SiemFormat::Ecs => ecs::document(alert).to_string(),
            SiemFormat::Ocsf => ocsf::finding(alert).to_string(),
            SiemFormat::Cef => cef::line(alert),
        }
    }
}

/// Writes verdicts as SIEM events, one per line.
pub struct SiemWriter<W: Write> {
    out: W,
    format: SiemFormat,
}

impl<W: Write> SiemWriter<W> {
    pub fn new(out: W, format: SiemFormat) -> Self {
        SiemWriter { out, format }
    }
}

impl<W: Write> VerdictSink for SiemWriter<W> {
    fn write(&mut self, verdict: &Verdict) -> Result<(), SinkError> {
        let line = self.format.render(&Alert::now(verdict));
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(self.out.flush()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::tests::brute_force;

    #[test]
    fn one_line_per_verdict_in_every_format() {
        let mut v = brute_force();
        v.evidence = Some("line one\nline two".into());
        for format in [SiemFormat::Ecs, SiemFormat::Ocsf, SiemFormat::Cef] {
            let mut out = Vec::new();
            let mut w = SiemWriter::new(&mut out, format);
            w.write(&v).unwrap();
            w.write(&v).unwrap();
            w.finish().unwrap();
            let text = String::from_utf8(out).unwrap();
            assert_eq!(text.lines().count(), 2, "{format:?}: {text}");
            if format != SiemFormat::Cef {
                for line in text.lines() {
                    serde_json::from_str::<serde_json::Value>(line).unwrap();
                }
            }
        }
    }
}
