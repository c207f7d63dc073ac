//! Bad blocks give the right error, naming the right transaction, from both executors.

mod common;

use common::*;
use parex_evm::sign::sign_eip1559;
use parex_evm::{execute_block, BlockError, ExecConfig, ExecutorKind};
use parex_primitives::{Bytes, Fork, U256};

fn all_executors(txs: &[Bytes]) -> Vec<Result<parex_evm::BlockResult, BlockError>> {
    let env = env(Fork::Prague);
    let state = genesis();
    let mut out = Vec::new();
    for (executor, threads) in [
        (ExecutorKind::Sequential, 1),
        (ExecutorKind::Parallel, 1),
        (ExecutorKind::Parallel, 4),
    ] {
        out.push(execute_block(
            &env,
            txs,
            &state,
            &ExecConfig {
                executor,
                threads,
                trace: false,
                trace_runs: 1,
                sequential_rule: false,
            },
        ));
    }
    out
}

fn good(key: u32, nonce: u64) -> Bytes {
    sign(
        2,
        key,
        &call(nonce, fixed(HOT), U256::from(1), vec![], 21_000),
    )
}

fn expect(txs: &[Bytes], check: impl Fn(&BlockError) -> bool) {
    for result in all_executors(txs) {
        match result {
            Err(e) => assert!(check(&e), "unexpected error {e:?}"),
            Ok(_) => panic!("bad block accepted"),
        }
    }
}

#[test]
fn malformed_envelope() {
    let mut txs = vec![good(1, 0), good(2, 0)];
    txs.push(Bytes::from_static(&[0x02, 0xc0, 0x01]));
    txs.push(Bytes::new());
    expect(&txs, |e| matches!(e, BlockError::Decode { index: 2, .. }));
    expect(&[Bytes::from_static(&[0x7f, 0x00])], |e| {
        matches!(e, BlockError::Decode { index: 0, .. })
    });
}

#[test]
fn bad_signature() {
    let txs = vec![good(1, 0), tampered_signature()];
    expect(&txs, |e| {
        matches!(e, BlockError::Signature { index: 1, .. })
    });
}

/// A valid EIP-1559 envelope whose `r` is replaced by a value that is not on the curve.
fn tampered_signature() -> Bytes {
    let mut raw = good(2, 0).to_vec();
    // y_parity, r, s are the last fields: 0x01/0x80, 0xa0 ++ r(32), 0xa0 ++ s(32) when r and s
    // have 32 significant bytes (true for these fixed keys; checked below).
    let len = raw.len();
    assert_eq!(raw[len - 33], 0xa0, "s is 32 bytes");
    assert_eq!(raw[len - 66], 0xa0, "r is 32 bytes");
    for b in &mut raw[len - 65..len - 33] {
        *b = 0xff; // r >= n: invalid
    }
    Bytes::from(raw)
}

#[test]
fn wrong_chain_id() {
    let request = call(0, fixed(HOT), U256::from(1), vec![], 21_000);
    let wrong = sign_eip1559(CHAIN_ID + 1, &secret(3), &request).expect("sign");
    let txs = vec![good(1, 0), good(2, 0), wrong];
    expect(
        &txs,
        |e| matches!(e, BlockError::InvalidTransaction { index: 2, reason } if reason.contains("chain id")),
    );
}

#[test]
fn nonce_gap() {
    let txs = vec![good(1, 0), good(1, 1), good(1, 3), good(2, 0)];
    expect(&txs, |e| {
        matches!(e, BlockError::InvalidTransaction { index: 2, .. })
    });
}

#[test]
fn insufficient_funds() {
    let rich = call(0, fixed(HOT), ether(2_000), vec![], 21_000);
    let txs = vec![good(1, 0), sign(2, 3, &rich), good(2, 0)];
    expect(&txs, |e| {
        matches!(e, BlockError::InvalidTransaction { index: 1, .. })
    });
}

#[test]
fn gas_above_block_limit() {
    let env = env(Fork::Prague);
    let huge = call(0, fixed(HOT), U256::from(1), vec![], env.gas_limit + 1);
    let txs = vec![good(1, 0), sign(2, 3, &huge)];
    expect(
        &txs,
        |e| matches!(e, BlockError::InvalidTransaction { index: 1, reason } if reason.contains("exceeds remaining block gas")),
    );
    // Each fits alone; the first burns all its gas (out of gas), the second no longer fits.
    let burn = call(0, fixed(SPINNER), U256::ZERO, vec![], env.gas_limit / 2 + 1);
    let second = call(0, fixed(COUNTER), U256::ZERO, vec![], env.gas_limit / 2);
    let txs = vec![sign(2, 3, &burn), sign(2, 4, &second)];
    expect(&txs, |e| {
        matches!(e, BlockError::InvalidTransaction { index: 1, .. })
    });
}

#[test]
fn later_error_does_not_hide_earlier_one() {
    let request = call(0, fixed(HOT), U256::from(1), vec![], 21_000);
    let wrong_chain = sign_eip1559(CHAIN_ID + 1, &secret(3), &request).expect("sign");
    let txs = vec![good(1, 0), good(1, 2), wrong_chain];
    expect(&txs, |e| {
        matches!(e, BlockError::InvalidTransaction { index: 1, .. })
    });
}

/// Recovery split over the workers (at 4 threads, four shares of four transactions) still
/// names the lowest bad transaction, whichever share finds it and whatever else is bad.
#[test]
fn split_recovery_names_the_lowest_bad_transaction() {
    let mut txs: Vec<Bytes> = (0..16).map(|key| good(key, 0)).collect();
    txs[13] = tampered_signature();
    txs[6] = Bytes::from_static(&[0x02, 0xc0, 0x01]);
    expect(&txs, |e| matches!(e, BlockError::Decode { index: 6, .. }));
    txs[6] = good(6, 0);
    expect(&txs, |e| {
        matches!(e, BlockError::Signature { index: 13, .. })
    });
}
