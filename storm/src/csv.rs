//! The per-100-ms series of each run as CSV, for `scripts/storm-plot.py`:
//! one file per scenario (`t_ms,attempts,accepts,busy,refused`, a row per
//! 100-ms bucket from 0 to the end of the run) and an `index.csv` naming
//! each file with its scenario and restart times.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use crate::record::BUCKET_MS;
use crate::report::Report;

/// The file name of a report's series.
pub fn file_name(r: &Report) -> String {
    let sc = &r.scenario;
    format!(
        "{}-{}-n{}-r{}-o{}-x{}.csv",
        sc.strategy.name(),
        sc.server.name(),
        sc.agents,
        sc.rate,
        sc.outage_ms / 1000,
        sc.restarts
    )
}

/// Writes each report's series and the index into `dir` (created if needed).
pub fn write_all(dir: &Path, reports: &[Report]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut index = io::BufWriter::new(fs::File::create(dir.join("index.csv"))?);
    writeln!(index, "file,strategy,server,agents,rate,outage_s,restarts,seed,down1_ms,up1_ms,down2_ms,up2_ms,end_ms")?;
    for r in reports {
        let sc = &r.scenario;
        let name = file_name(r);
        let times = |k: usize| r.restarts.get(k).map_or((String::new(), String::new()), |s| (s.down_ms.to_string(), s.up_ms.to_string()));
        let ((d1, u1), (d2, u2)) = (times(0), times(1));
        writeln!(
            index,
            "{name},{},{},{},{},{},{},{},{d1},{u1},{d2},{u2},{}",
            sc.strategy.name(),
            sc.server.name(),
            sc.agents,
            sc.rate,
            sc.outage_ms / 1000,
            sc.restarts,
            sc.seed,
            r.end_ms
        )?;
        let mut f = io::BufWriter::new(fs::File::create(dir.join(&name))?);
        writeln!(f, "t_ms,attempts,accepts,busy,refused")?;
        for (i, b) in r.series.iter().enumerate() {
            writeln!(f, "{},{},{},{},{}", i as u64 * BUCKET_MS, b.attempts, b.accepts, b.busy, b.refused)?;
        }
        f.flush()?;
    }
    index.flush()
}
