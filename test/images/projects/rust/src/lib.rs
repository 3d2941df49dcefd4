//! A crate with no external dependencies: threads, processes, pipes.
use std::sync::mpsc;
use std::thread;

pub fn parallel_sum(threads: u64, n: u64) -> u64 {
    let (tx, rx) = mpsc::channel();
    for t in 0..threads {
        let tx = tx.clone();
        thread::spawn(move || tx.send((t..n).step_by(threads as usize).sum::<u64>()).unwrap());
    }
    drop(tx);
    rx.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn sums_in_threads() {
        assert_eq!(parallel_sum(8, 1_000_000), 499_999_500_000);
    }

    #[test]
    fn runs_a_child_through_a_pipe() {
        let out = Command::new("sh").args(["-c", "echo piped"]).stdout(Stdio::piped()).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "piped\n");
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        child.kill().unwrap();
        assert!(!child.wait().unwrap().success());
    }
}
