//! Fork schedules: which fork's rules apply to a block, by number before the Merge and by
//! timestamp after it.
//!
//! One parser serves every caller (the engine, `parex conformance`, `parex replay`, the
//! Python bindings): a plain fork name (`"Cancun"`, `"EIP158"`) is a schedule with one fork
//! from genesis; a transition name of the execution-spec tests switches by block number
//! (`"BerlinToLondonAt5"`) or by timestamp (`"ShanghaiToCancunAtTime15k"`).

use crate::block::{Fork, UnknownFork};
use std::fmt;
use std::str::FromStr;

/// When a fork activates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// At this block number and after.
    Block(u64),
    /// At the first block whose timestamp is at least this.
    Timestamp(u64),
}

impl Activation {
    fn active(self, number: u64, timestamp: u64) -> bool {
        match self {
            Activation::Block(n) => number >= n,
            Activation::Timestamp(t) => timestamp >= t,
        }
    }
}

/// Forks and their activations, in activation order. The first activates at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ForkSchedule {
    forks: Vec<(Activation, Fork)>,
}

impl ForkSchedule {
    /// One fork from genesis on.
    pub fn single(fork: Fork) -> Self {
        ForkSchedule {
            forks: vec![(Activation::Block(0), fork)],
        }
    }

    /// A schedule from `(activation, fork)` pairs; sorted by fork, so that later forks win.
    pub fn new(mut forks: Vec<(Activation, Fork)>) -> Self {
        forks.sort_by_key(|(_, fork)| *fork);
        if forks.is_empty() {
            forks.push((Activation::Block(0), Fork::Frontier));
        }
        ForkSchedule { forks }
    }

    /// Ethereum mainnet (the DAO fork's irregular state change is not modelled;
    /// Constantinople and Petersburg activated together, so Constantinople never applies).
    pub fn mainnet() -> Self {
        use Activation::{Block, Timestamp};
        ForkSchedule::new(vec![
            (Block(0), Fork::Frontier),
            (Block(1_150_000), Fork::Homestead),
            (Block(2_463_000), Fork::TangerineWhistle),
            (Block(2_675_000), Fork::SpuriousDragon),
            (Block(4_370_000), Fork::Byzantium),
            (Block(7_280_000), Fork::Petersburg),
            (Block(9_069_000), Fork::Istanbul),
            (Block(9_200_000), Fork::MuirGlacier),
            (Block(12_244_000), Fork::Berlin),
            (Block(12_965_000), Fork::London),
            (Block(13_773_000), Fork::ArrowGlacier),
            (Block(15_050_000), Fork::GrayGlacier),
            (Block(15_537_394), Fork::Paris),
            (Timestamp(1_681_338_455), Fork::Shanghai),
            (Timestamp(1_710_338_135), Fork::Cancun),
            (Timestamp(1_746_612_311), Fork::Prague),
            (Timestamp(1_764_798_551), Fork::Osaka),
        ])
    }

    /// The fork whose rules apply to block `number` with `timestamp`.
    pub fn fork_at(&self, number: u64, timestamp: u64) -> Fork {
        self.forks
            .iter()
            .rev()
            .find(|(activation, _)| activation.active(number, timestamp))
            .map_or(self.forks[0].1, |(_, fork)| *fork)
    }

    /// The forks and their activations, in order.
    pub fn forks(&self) -> &[(Activation, Fork)] {
        &self.forks
    }

    /// The first fork (the genesis rules).
    pub fn first(&self) -> Fork {
        self.forks[0].1
    }

    /// The last fork the schedule reaches.
    pub fn last(&self) -> Fork {
        self.forks[self.forks.len() - 1].1
    }
}

impl fmt::Display for ForkSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (activation, fork)) in self.forks.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match activation {
                Activation::Block(n) => write!(f, "{fork} at block {n}")?,
                Activation::Timestamp(t) => write!(f, "{fork} at time {t}")?,
            }
        }
        Ok(())
    }
}

/// A number with an optional `k` (thousands) suffix: `5`, `15k`.
fn parse_count(text: &str) -> Option<u64> {
    let (digits, scale) = match text.strip_suffix(['k', 'K']) {
        Some(digits) => (digits, 1000),
        None => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

/// `"Homestead@0,Byzantium@9,Paris@36,Shanghai@t390"`: forks with their activation block,
/// or timestamp after `t` (a chain's whole schedule, as a geth genesis `config` gives it).
fn parse_list(text: &str) -> Option<ForkSchedule> {
    let mut forks = Vec::new();
    for entry in text.split(',') {
        let (fork, at) = entry.trim().split_once('@')?;
        let activation = match at.strip_prefix('t') {
            Some(time) => Activation::Timestamp(parse_count(time)?),
            None => Activation::Block(parse_count(at)?),
        };
        forks.push((activation, fork.parse::<Fork>().ok()?));
    }
    Some(ForkSchedule::new(forks))
}

impl FromStr for ForkSchedule {
    type Err = UnknownFork;

    /// `"Prague"`, `"EIP158"`, `"ShanghaiToCancunAtTime15k"`, `"BerlinToLondonAt5"`. A total
    /// difficulty transition (`"...AtDiffC0000"`) is not supported: it needs the chain's
    /// total difficulty.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownFork(s.to_string());
        if s.contains('@') {
            return parse_list(s).ok_or_else(unknown);
        }
        let Some((from, rest)) = s.split_once("To") else {
            return Ok(ForkSchedule::single(s.parse()?));
        };
        let (to, activation) = if let Some((to, at)) = rest.split_once("AtTime") {
            (
                to,
                Activation::Timestamp(parse_count(at).ok_or_else(unknown)?),
            )
        } else if let Some((to, at)) = rest.split_once("At") {
            (to, Activation::Block(parse_count(at).ok_or_else(unknown)?))
        } else {
            return Err(unknown());
        };
        let from: Fork = from.parse().map_err(|_| unknown())?;
        let to: Fork = to.parse().map_err(|_| unknown())?;
        if to <= from {
            return Err(unknown());
        }
        Ok(ForkSchedule {
            forks: vec![(Activation::Block(0), from), (activation, to)],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_gives_every_activation() {
        let schedule: ForkSchedule = "Homestead@0,Byzantium@9,Paris@36,Shanghai@t390,Cancun@t420"
            .parse()
            .unwrap();
        assert_eq!(schedule.fork_at(0, 0), Fork::Homestead);
        assert_eq!(schedule.fork_at(8, 80), Fork::Homestead);
        assert_eq!(schedule.fork_at(9, 90), Fork::Byzantium);
        assert_eq!(schedule.fork_at(36, 360), Fork::Paris);
        assert_eq!(schedule.fork_at(39, 390), Fork::Shanghai);
        assert_eq!(schedule.fork_at(42, 420), Fork::Cancun);
        for bad in ["Homestead@", "Nowhere@0", "Byzantium@t", "Byzantium@x9"] {
            assert!(bad.parse::<ForkSchedule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_names_and_aliases_are_one_fork_from_genesis() {
        let s: ForkSchedule = "EIP158".parse().unwrap();
        assert_eq!(s.fork_at(0, 0), Fork::SpuriousDragon);
        assert_eq!(s.fork_at(u64::MAX, u64::MAX), Fork::SpuriousDragon);
        assert_eq!(
            "cancun".parse::<ForkSchedule>().unwrap().last(),
            Fork::Cancun
        );
    }

    #[test]
    fn transitions_switch_by_timestamp_or_number() {
        let s: ForkSchedule = "ShanghaiToCancunAtTime15k".parse().unwrap();
        assert_eq!(s.fork_at(1, 14_999), Fork::Shanghai);
        assert_eq!(s.fork_at(1, 15_000), Fork::Cancun);
        let s: ForkSchedule = "ParisToShanghaiAtTime15k".parse().unwrap();
        assert_eq!(s.fork_at(100, 0), Fork::Paris);
        assert_eq!(s.fork_at(2, 15_000), Fork::Shanghai);
        let s: ForkSchedule = "CancunToPragueAtTime15k".parse().unwrap();
        assert_eq!(s.fork_at(3, 15_001), Fork::Prague);
        let s: ForkSchedule = "BerlinToLondonAt5".parse().unwrap();
        assert_eq!(s.fork_at(4, 1_000_000), Fork::Berlin);
        assert_eq!(s.fork_at(5, 0), Fork::London);
        let s: ForkSchedule = "EIP158ToByzantiumAt5".parse().unwrap();
        assert_eq!(s.fork_at(5, 0), Fork::Byzantium);
    }

    #[test]
    fn bad_names_are_rejected_with_the_name() {
        for bad in [
            "Pragu",
            "CancunToShanghaiAtTime15k",
            "ShanghaiToCancunAtTime",
            "XToY",
            "ArrowGlacierToParisAtDiffC0000",
            "ShanghaiToCancunAtTime1x",
        ] {
            let err = bad.parse::<ForkSchedule>().unwrap_err();
            assert_eq!(err.0, bad);
        }
    }

    #[test]
    fn mainnet_schedule_matches_known_blocks() {
        let m = ForkSchedule::mainnet();
        assert_eq!(m.fork_at(46_147, 0), Fork::Frontier);
        assert_eq!(m.fork_at(4_370_000, 0), Fork::Byzantium);
        assert_eq!(m.fork_at(7_280_000, 0), Fork::Petersburg);
        assert_eq!(m.fork_at(15_537_394, 1_663_224_179), Fork::Paris);
        assert_eq!(m.fork_at(17_034_870, 1_681_338_479), Fork::Shanghai);
        assert_eq!(m.fork_at(19_934_116, 1_716_000_000), Fork::Cancun);
    }
}
