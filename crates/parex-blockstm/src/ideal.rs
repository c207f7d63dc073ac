//! The ideal speedup bound of a block: total work over the critical path of its dependency
//! graph.
//!
//! Transaction `j` depends on `i < j` when `j` reads a key whose value `i` produced: the last
//! full write below `j`, and every lazy delta between that write and `j`. Writes never depend on
//! writes (the multi-version memory keeps them apart), and a delta depends on nothing. With each
//! transaction's measured time as its weight, no scheduler on any number of cores can beat
//! `work / critical path`.

use crate::TxnTrace;
use ahash::AHashMap;
use std::hash::Hash;

#[derive(Default, Clone, Copy)]
struct KeyState {
    /// Finish time of the last full write, if any.
    write_finish: u64,
    /// Latest finish time among deltas since that write.
    delta_finish: u64,
}

/// `sum(nanos) / critical path`; 1.0 for an empty block or one with no measured time.
pub fn ideal_speedup<K: Eq + Hash>(traces: &[TxnTrace<K>]) -> f64 {
    let mut keys: AHashMap<&K, KeyState> = AHashMap::new();
    let mut total: u128 = 0;
    let mut critical: u64 = 0;
    for trace in traces {
        let start = trace
            .reads
            .iter()
            .filter_map(|key| keys.get(key))
            .map(|state| state.write_finish.max(state.delta_finish))
            .max()
            .unwrap_or(0);
        let finish = start + trace.nanos;
        for key in &trace.writes {
            keys.insert(
                key,
                KeyState {
                    write_finish: finish,
                    delta_finish: 0,
                },
            );
        }
        for key in &trace.deltas {
            let state = keys.entry(key).or_default();
            state.delta_finish = state.delta_finish.max(finish);
        }
        total += trace.nanos as u128;
        critical = critical.max(finish);
    }
    if critical == 0 {
        1.0
    } else {
        total as f64 / critical as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(reads: &[u8], writes: &[u8], deltas: &[u8], nanos: u64) -> TxnTrace<u8> {
        TxnTrace {
            reads: reads.to_vec(),
            writes: writes.to_vec(),
            deltas: deltas.to_vec(),
            nanos,
        }
    }

    #[test]
    fn independent_transactions_scale_with_count() {
        let traces: Vec<_> = (0..8).map(|k| trace(&[k], &[k], &[], 10)).collect();
        assert_eq!(ideal_speedup(&traces), 8.0);
    }

    #[test]
    fn a_chain_does_not_scale() {
        let traces: Vec<_> = (0..8).map(|_| trace(&[0], &[0], &[], 10)).collect();
        assert_eq!(ideal_speedup(&traces), 1.0);
    }

    #[test]
    fn deltas_do_not_serialise_but_a_reader_waits_for_all() {
        let mut traces: Vec<_> = (0..4).map(|_| trace(&[], &[], &[7], 10)).collect();
        assert_eq!(ideal_speedup(&traces), 4.0);
        traces.push(trace(&[7], &[], &[], 10));
        // 50 ns of work; the reader starts after the deltas (10 ns) and ends at 20 ns.
        assert_eq!(ideal_speedup(&traces), 2.5);
    }
}
