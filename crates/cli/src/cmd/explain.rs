//! How `--explain` prints findings, the same way for `ports` (a run's evidence) and `report`
//! (a stored window): one paragraph each in text, one `{"event":"finding",...}` JSON object per
//! line on stderr with `--format json` (stdout stays the command's own NDJSON).

use netvantage_core::findings::{self, Finding};

/// Findings paragraphs shown in text mode; `--format json` lists every one.
const MAX_FINDING_PARAGRAPHS: usize = 20;

/// The findings section for text output.
pub fn findings_text(findings: &[Finding]) -> String {
    findings::render_text(findings, MAX_FINDING_PARAGRAPHS)
}

/// One `{"event":"finding",...}` line per finding.
pub fn write_finding_events(
    out: &mut impl std::io::Write,
    findings: &[Finding],
) -> std::io::Result<()> {
    for finding in findings {
        serde_json::to_writer(&mut *out, &finding.event())?;
        writeln!(out)?;
    }
    out.flush()
}
