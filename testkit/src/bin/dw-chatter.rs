//! Test fixture for the logs route: writes LINES lines of BYTES bytes to stdout (default
//! 10,000 × 900: about 9 MB, more than the route's 8 MiB cap), then stays up. Built static
//! and put in an image of its own by status-api's `logs_stall` test.

use std::io::Write;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().ok());
    let lines = args.next().flatten().unwrap_or(10_000);
    let bytes = args.next().flatten().unwrap_or(900).max(16);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for i in 0..lines {
        let _ = writeln!(out, "{i:08} {}", "x".repeat(bytes - 10));
    }
    let _ = out.flush();
    drop(out);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
