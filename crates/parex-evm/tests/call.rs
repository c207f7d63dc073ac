//! eth_call / eth_estimateGas core: outputs, revert data, halts, invalid messages, and an
//! estimate that is the least gas limit that succeeds.

use parex_evm::call::{call, estimate_gas, CallError, CallRequest, CallStatus};
use parex_primitives::{Address, BlockEnv, Bytes, U256};
use parex_state::InMemoryState;

fn setup() -> (BlockEnv, InMemoryState) {
    let mut state = InMemoryState::new();
    // RETURN 42
    state.insert_account(
        Address::with_last_byte(0xa1),
        U256::ZERO,
        1,
        Some(Bytes::from_static(&[
            0x60, 0x2a, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xf3,
        ])),
    );
    // REVERT with 0xaa
    state.insert_account(
        Address::with_last_byte(0xa2),
        U256::ZERO,
        1,
        Some(Bytes::from_static(&[
            0x60, 0xaa, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xfd,
        ])),
    );
    // SSTORE(0, CALLDATALOAD(0)): clearing a set slot earns a refund.
    state.insert_account(
        Address::with_last_byte(0xa3),
        U256::ZERO,
        1,
        Some(Bytes::from_static(&[
            0x60, 0x00, 0x35, 0x60, 0x00, 0x55, 0x00,
        ])),
    );
    state.insert_storage(Address::with_last_byte(0xa3), U256::ZERO, U256::from(5));
    // INVALID
    state.insert_account(
        Address::with_last_byte(0xa4),
        U256::ZERO,
        1,
        Some(Bytes::from_static(&[0xfe])),
    );
    state.insert_account(
        Address::with_last_byte(0x01),
        U256::from(1_000_000u64),
        0,
        None,
    );
    let env = BlockEnv {
        base_fee: 1_000_000_000,
        ..BlockEnv::default()
    };
    (env, state)
}

fn to(byte: u8) -> CallRequest {
    CallRequest {
        to: Some(Address::with_last_byte(byte)),
        ..Default::default()
    }
}

#[test]
fn call_outcomes() {
    let (env, state) = setup();
    let ok = call(&env, &to(0xa1), &state).unwrap();
    assert_eq!(ok.status, CallStatus::Success);
    assert_eq!(
        ok.output,
        Bytes::from(U256::from(42).to_be_bytes::<32>().to_vec())
    );
    let reverted = call(&env, &to(0xa2), &state).unwrap();
    assert_eq!(reverted.status, CallStatus::Revert);
    assert_eq!(reverted.output[31], 0xaa);
    let halted = call(&env, &to(0xa4), &state).unwrap();
    assert_eq!(halted.status, CallStatus::Halt("invalid opcode".into()));
    // Nothing was committed: the slot still holds 5 after a call that clears it.
    call(&env, &to(0xa3), &state).unwrap();
    assert_eq!(
        parex_state::StateViewRef::storage(&state, &Address::with_last_byte(0xa3), &U256::ZERO)
            .unwrap(),
        U256::from(5)
    );
}

#[test]
fn invalid_messages_are_errors() {
    let (env, state) = setup();
    let rich = Address::with_last_byte(0x01);
    let too_much = CallRequest {
        from: rich,
        value: U256::from(2_000_000u64),
        ..to(0xa1)
    };
    assert!(matches!(
        call(&env, &too_much, &state),
        Err(CallError::Invalid(_))
    ));
    let wrong_nonce = CallRequest {
        from: rich,
        nonce: Some(5),
        ..to(0xa1)
    };
    assert!(matches!(
        call(&env, &wrong_nonce, &state),
        Err(CallError::Invalid(_))
    ));
    // Paying a fee needs the funds for it: 1M wei cannot buy 21,000 gas at 1 gwei.
    let paying = CallRequest {
        from: rich,
        max_fee_per_gas: Some(1_000_000_000),
        ..to(0xa1)
    };
    assert!(matches!(
        call(&env, &paying, &state),
        Err(CallError::Invalid(_))
    ));
}

#[test]
fn estimate_is_the_least_gas_that_succeeds() {
    let (env, state) = setup();
    for request in [
        to(0xa1),
        CallRequest {
            input: Bytes::from(vec![0u8; 32]),
            ..to(0xa3)
        },
        CallRequest {
            input: Bytes::from(U256::from(9).to_be_bytes::<32>().to_vec()),
            ..to(0xa3)
        },
        CallRequest {
            from: Address::with_last_byte(0x01),
            to: Some(Address::with_last_byte(0x55)),
            value: U256::from(5),
            ..Default::default()
        },
    ] {
        let estimate = estimate_gas(&env, &request, &state).unwrap().unwrap();
        let at = |gas| {
            call(
                &env,
                &CallRequest {
                    gas: Some(gas),
                    ..request.clone()
                },
                &state,
            )
        };
        assert_eq!(
            at(estimate).unwrap().status,
            CallStatus::Success,
            "{request:?}"
        );
        assert!(
            !matches!(at(estimate - 1), Ok(o) if o.status == CallStatus::Success),
            "{request:?} at {estimate}"
        );
    }
    assert_eq!(
        estimate_gas(
            &env,
            &CallRequest {
                from: Address::with_last_byte(0x01),
                to: Some(Address::with_last_byte(0x55)),
                ..Default::default()
            },
            &state
        )
        .unwrap()
        .unwrap(),
        21_000
    );
    let reverted = estimate_gas(&env, &to(0xa2), &state).unwrap().unwrap_err();
    assert_eq!(reverted.status, CallStatus::Revert);
}

#[test]
fn estimate_caps_gas_by_what_the_balance_buys() {
    let (env, state) = setup();
    let rich = Address::with_last_byte(0x01);
    // 1,000,000 wei at 20 wei per gas buys 50,000 gas: enough for a transfer.
    let request = CallRequest {
        from: rich,
        to: Some(Address::with_last_byte(0x55)),
        value: U256::from(1),
        max_fee_per_gas: Some(20),
        ..Default::default()
    };
    let env = BlockEnv {
        base_fee: 10,
        ..env
    };
    assert_eq!(
        estimate_gas(&env, &request, &state).unwrap().unwrap(),
        21_000
    );
    // At 100 wei per gas it buys 9,999 gas: below a transfer's intrinsic gas.
    let poor = CallRequest {
        max_fee_per_gas: Some(100),
        ..request.clone()
    };
    assert!(matches!(
        estimate_gas(&env, &poor, &state),
        Err(CallError::Invalid(_))
    ));
    let too_much = CallRequest {
        value: U256::from(2_000_000u64),
        ..request
    };
    let err = estimate_gas(&env, &too_much, &state).unwrap_err();
    assert!(err.to_string().contains("insufficient funds"), "{err}");
}
