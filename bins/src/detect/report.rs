//! What one detector's run comes to: false suspicions, the detection time of the crash at
//! each survivor, the survivors that never detected it; as a table row or a JSON object.

use super::args::Opts;

/// One suspicion, as a member printed it.
#[derive(Clone, Debug)]
pub struct Suspicion {
    /// The member that suspects.
    pub by: usize,
    /// When, on CLOCK_MONOTONIC (ns).
    pub at: u64,
    /// The member suspected; `None` for an id outside the view (cannot happen, counted false).
    pub whom: Option<usize>,
}

/// What the parent saw in one run.
pub struct Run {
    pub detector: String,
    pub members: usize,
    pub victim: usize,
    /// When the victim was killed (ns, CLOCK_MONOTONIC).
    pub kill_ns: u64,
    /// When the run was stopped; suspicions from then on are not counted.
    pub stop_ns: u64,
    pub suspicions: Vec<Suspicion>,
    /// Messages delivered, cast and skipped (flow control) by the survivors.
    pub delivered: u64,
    pub cast: u64,
    pub skipped: u64,
}

/// The figures of one run.
#[derive(Debug, PartialEq)]
pub struct Figures {
    pub false_before: usize,
    pub false_after: usize,
    /// Detection time of each survivor that detected the crash, in ms, sorted.
    pub detect_ms: Vec<f64>,
    pub never: Vec<usize>,
}

impl Figures {
    pub fn of(r: &Run) -> Figures {
        let (mut false_before, mut false_after) = (0, 0);
        let mut first: Vec<Option<u64>> = vec![None; r.members];
        for s in r.suspicions.iter().filter(|s| s.at < r.stop_ns) {
            let crashed = s.whom == Some(r.victim) && s.at >= r.kill_ns;
            if crashed {
                let f = &mut first[s.by];
                *f = Some(f.map_or(s.at, |t| t.min(s.at)));
            } else if s.at < r.kill_ns {
                false_before += 1;
            } else {
                false_after += 1;
            }
        }
        let survivors = (0..r.members).filter(|&i| i != r.victim);
        let never = survivors.clone().filter(|&i| first[i].is_none()).collect();
        let mut detect_ms: Vec<f64> =
            survivors.filter_map(|i| first[i]).map(|t| (t - r.kill_ns) as f64 / 1e6).collect();
        detect_ms.sort_by(f64::total_cmp);
        Figures { false_before, false_after, detect_ms, never }
    }

    pub fn false_total(&self) -> usize {
        self.false_before + self.false_after
    }

    pub fn min(&self) -> Option<f64> {
        self.detect_ms.first().copied()
    }

    pub fn max(&self) -> Option<f64> {
        self.detect_ms.last().copied()
    }

    pub fn median(&self) -> Option<f64> {
        let v = &self.detect_ms;
        match v.len() {
            0 => None,
            n if n % 2 == 1 => Some(v[n / 2]),
            n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

fn json_ms(v: Option<f64>) -> String {
    v.map_or("null".into(), |v| format!("{v:.1}"))
}

/// One JSON object (one line) for a detector's run.
pub fn json(o: &Opts, r: &Run, f: &Figures) -> String {
    let list = |v: &[String]| v.join(",");
    format!(
        "{{\"detector\":\"{}\",\"stack\":\"{}\",\"members\":{},\"duration_s\":{},\"after_s\":{},\"load\":{},\
         \"rate\":{},\"size\":{},\"victim\":{},\"false_suspicions\":{},\"false_before_crash\":{},\
         \"false_after_crash\":{},\"survivors\":{},\"detected\":{},\"never_detected\":{},\"detect_min_ms\":{},\
         \"detect_median_ms\":{},\"detect_max_ms\":{},\"delivered\":{},\"cast\":{},\"skipped\":{},\
         \"detect_ms\":[{}],\"never_detected_members\":[{}]}}",
        r.detector,
        super::args::stack(&r.detector),
        r.members,
        o.duration.as_secs_f64(),
        o.after.as_secs_f64(),
        o.load,
        o.rate,
        o.size,
        r.victim,
        f.false_total(),
        f.false_before,
        f.false_after,
        r.members - 1,
        f.detect_ms.len(),
        f.never.len(),
        json_ms(f.min()),
        json_ms(f.median()),
        json_ms(f.max()),
        r.delivered,
        r.cast,
        r.skipped,
        list(&f.detect_ms.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>()),
        list(&f.never.iter().map(|v| v.to_string()).collect::<Vec<_>>()),
    )
}

/// The human table: one row per detector.
pub fn table(o: &Opts, rows: &[(Run, Figures)]) -> String {
    let mut t = format!(
        "thoth-detect: {} members, {} s per detector, member {} killed {} s before the end, \
         {} msgs/s of {} B each, {} CPU-burning thread(s)\n\n",
        o.members,
        o.duration.as_secs_f64(),
        o.members - 1,
        o.after.as_secs_f64(),
        o.rate,
        o.size,
        o.load
    );
    t.push_str(&format!(
        "{:<10} {:>16} {:>9} {:>11} {:>11} {:>11} {:>14} {:>12}\n",
        "detector", "false suspicions", "detected", "min ms", "median ms", "max ms", "never detected", "delivered"
    ));
    for (r, f) in rows {
        let never = if f.never.is_empty() {
            "0".to_string()
        } else {
            format!("{} ({})", f.never.len(), f.never.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(","))
        };
        t.push_str(&format!(
            "{:<10} {:>16} {:>9} {:>11} {:>11} {:>11} {:>14} {:>12}\n",
            r.detector,
            format!("{} ({}+{})", f.false_total(), f.false_before, f.false_after),
            format!("{}/{}", f.detect_ms.len(), r.members - 1),
            ms(f.min()),
            ms(f.median()),
            ms(f.max()),
            never,
            r.delivered
        ));
    }
    t.push_str(
        "\nfalse suspicions: total (before + after the crash); detection times from the SIGKILL to each \
         survivor's Event::Suspect\n",
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_suspicions() {
        let s = |by, at, whom| Suspicion { by, at, whom: Some(whom) };
        let run = Run {
            detector: "heartbeat".into(),
            members: 4,
            victim: 3,
            kill_ns: 1_000_000_000,
            stop_ns: 9_000_000_000,
            suspicions: vec![
                s(0, 500, 3),           // the victim, before the crash: false
                s(3, 600, 1),           // the victim suspecting a live member: false
                s(0, 1_900_000_000, 3), // detection, 900 ms
                s(0, 2_000_000_000, 3), // again: only the first counts
                s(1, 2_100_000_000, 3), // detection, 1100 ms
                s(1, 2_200_000_000, 0), // a live member, after: false
                s(0, 9_500_000_000, 1), // after the stop: not counted
            ],
            delivered: 0,
            cast: 0,
            skipped: 0,
        };
        let f = Figures::of(&run);
        assert_eq!(f, Figures { false_before: 2, false_after: 1, detect_ms: vec![900.0, 1100.0], never: vec![2] });
        assert_eq!((f.min(), f.median(), f.max()), (Some(900.0), Some(1000.0), Some(1100.0)));
        let o = match super::super::args::parse(&[]).unwrap() {
            super::super::args::Cmd::Run(o) => o,
            _ => unreachable!(),
        };
        let j = json(&o, &run, &f);
        assert!(j.contains("\"false_suspicions\":3,") && j.contains("\"never_detected_members\":[2]"), "{j}");
        assert!(table(&o, &[(run, f)]).contains("heartbeat"));
    }
}
