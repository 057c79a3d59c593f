//! The test fixture: a tiny static program that stays up, so tests can run containers
//! without pulling any image. `dw-sleeper [SECONDS]` exits after SECONDS (default: never).
//! It installs no signal handler: as PID 1 it ignores SIGTERM, so `stop` ends in SIGKILL
//! after the timeout, like many real images do.

fn main() {
    let secs: Option<u64> = std::env::args().nth(1).and_then(|s| s.parse().ok());
    println!("dw-sleeper up");
    match secs {
        Some(s) => std::thread::sleep(std::time::Duration::from_secs(s)),
        None => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
    }
}
