//! CPU load in the parent's own process: K threads that spin until stopped, or at the latest
//! until a bound given at the start, so a parent that fails cannot leave them burning.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<u64>>,
}

impl Load {
    /// Starts `k` spinning threads, each of which stops by itself after `bound`.
    pub fn start(k: usize, bound: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let until = Instant::now() + bound;
        let threads = (0..k)
            .map(|i| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = i as u64 + 1;
                    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                        for _ in 0..100_000 {
                            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
                        }
                    }
                    x
                })
            })
            .collect();
        Load { stop, threads }
    }

    /// Stops the threads and waits for them (each notices within about a millisecond).
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_when_told_and_by_itself() {
        let t0 = Instant::now();
        Load::start(2, Duration::from_secs(60)).stop();
        let bounded = Load::start(1, Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(100));
        assert!(bounded.threads.iter().all(|t| t.is_finished()));
        drop(bounded);
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}
