//! EIP-4844 blob sidecars: the checks a pool makes before it accepts a blob transaction.
//!
//! The KZG work is c-kzg's (through alloy-eips' `kzg` feature) with the Ethereum trusted setup
//! embedded in it; nothing here is cryptography of our own. Error messages are geth's.

use alloy_eips::eip4844::env_settings::EnvKzgSettings;
use alloy_eips::eip4844::BlobTransactionValidationError;
use alloy_eips::eip4844::{kzg_to_versioned_hash, BlobTransactionSidecar};
use alloy_eips::eip7594::BlobTransactionSidecarVariant;
use parex_primitives::B256;

/// Checks that `sidecar` belongs to a transaction with `versioned_hashes` and is valid:
/// between 1 and `max_blobs` blobs, as many blobs, commitments and proofs as hashes, each hash
/// the versioned hash of its commitment, and every blob's KZG proof verifying against its
/// commitment. EIP-7594 (cell proof) sidecars are refused: they belong to Osaka, after the
/// forks parex's pool serves. `Err` is the reason, worded as geth words it.
pub fn validate_sidecar(
    versioned_hashes: &[B256],
    sidecar: &BlobTransactionSidecarVariant,
    max_blobs: usize,
) -> Result<(), String> {
    let sidecar = match sidecar {
        BlobTransactionSidecarVariant::Eip4844(sidecar) => sidecar,
        BlobTransactionSidecarVariant::Eip7594(_) => {
            return Err(
                "invalid sidecar: EIP-7594 cell proofs are not accepted before Osaka".into(),
            )
        }
    };
    validate_eip4844_sidecar(versioned_hashes, sidecar, max_blobs)
}

/// [`validate_sidecar`] for an EIP-4844 sidecar.
pub fn validate_eip4844_sidecar(
    versioned_hashes: &[B256],
    sidecar: &BlobTransactionSidecar,
    max_blobs: usize,
) -> Result<(), String> {
    let count = versioned_hashes.len();
    if count == 0 {
        return Err("blob transaction missing blob hashes".into());
    }
    if count > max_blobs {
        return Err(format!(
            "too many blobs in transaction: have {count}, permitted {max_blobs}"
        ));
    }
    let counts = [
        ("blobs", sidecar.blobs.len()),
        ("blob commitments", sidecar.commitments.len()),
        ("blob proofs", sidecar.proofs.len()),
    ];
    for (what, n) in counts {
        if n != count {
            return Err(format!(
                "invalid number of {n} {what} compared to {count} blob hashes"
            ));
        }
    }
    for (i, (hash, commitment)) in versioned_hashes
        .iter()
        .zip(&sidecar.commitments)
        .enumerate()
    {
        let computed = kzg_to_versioned_hash(commitment.as_slice());
        if computed != *hash {
            return Err(format!(
                "blob {i}: computed hash {computed} mismatches transaction one {hash}"
            ));
        }
    }
    sidecar
        .validate(versioned_hashes, EnvKzgSettings::Default.get())
        .map_err(|e| match e {
            BlobTransactionValidationError::InvalidProof => "invalid blob proof".to_string(),
            other => format!("invalid blob proof: {other}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_eips::eip4844::{Blob, Bytes48};

    /// A sidecar of `n` deterministic blobs (each field element below the BLS modulus: its
    /// first byte is zero), built with c-kzg.
    fn sidecar(n: usize) -> BlobTransactionSidecar {
        let blobs = (0..n)
            .map(|i| {
                let mut blob = Blob::default();
                for (j, chunk) in blob.chunks_mut(32).enumerate() {
                    chunk[31] = (i + j) as u8;
                    chunk[30] = i as u8;
                }
                blob
            })
            .collect();
        BlobTransactionSidecar::try_from_blobs_with_settings(blobs, EnvKzgSettings::Default.get())
            .expect("valid blobs")
    }

    fn hashes(sidecar: &BlobTransactionSidecar) -> Vec<B256> {
        sidecar.versioned_hashes().collect()
    }

    #[test]
    fn a_valid_sidecar_passes() {
        let s = sidecar(2);
        assert_eq!(validate_eip4844_sidecar(&hashes(&s), &s, 9), Ok(()));
    }

    #[test]
    fn a_tampered_proof_is_refused() {
        let mut s = sidecar(2);
        // Another blob's proof: a valid curve point that does not open this commitment.
        s.proofs[0] = s.proofs[1];
        let err = validate_eip4844_sidecar(&hashes(&s), &s, 9).unwrap_err();
        assert!(err.starts_with("invalid blob proof"), "{err}");
        let mut s = sidecar(1);
        s.proofs[0] = Bytes48::repeat_byte(0x11);
        let err = validate_eip4844_sidecar(&hashes(&s), &s, 9).unwrap_err();
        assert!(err.starts_with("invalid blob proof"), "{err}");
    }

    #[test]
    fn a_wrong_versioned_hash_is_refused() {
        let s = sidecar(2);
        let mut h = hashes(&s);
        h[1].0[5] ^= 1;
        let err = validate_eip4844_sidecar(&h, &s, 9).unwrap_err();
        assert!(err.starts_with("blob 1: computed hash"), "{err}");
    }

    #[test]
    fn cell_proof_sidecars_are_refused_before_osaka() {
        use alloy_eips::eip7594::BlobTransactionSidecarEip7594;
        let s = sidecar(1);
        let osaka = BlobTransactionSidecarVariant::Eip7594(BlobTransactionSidecarEip7594::new(
            s.blobs.clone(),
            s.commitments.clone(),
            vec![Bytes48::ZERO; 128],
        ));
        let err = validate_sidecar(&hashes(&s), &osaka, 9).unwrap_err();
        assert!(err.contains("EIP-7594"), "{err}");
        let prague = BlobTransactionSidecarVariant::Eip4844(s.clone());
        assert_eq!(validate_sidecar(&hashes(&s), &prague, 9), Ok(()));
    }

    #[test]
    fn counts_must_agree_and_stay_within_the_limit() {
        let s = sidecar(2);
        let h = hashes(&s);
        assert_eq!(
            validate_eip4844_sidecar(&h[..1], &s, 9).unwrap_err(),
            "invalid number of 2 blobs compared to 1 blob hashes"
        );
        assert_eq!(
            validate_eip4844_sidecar(&h, &s, 1).unwrap_err(),
            "too many blobs in transaction: have 2, permitted 1"
        );
        assert_eq!(
            validate_eip4844_sidecar(&[], &s, 9).unwrap_err(),
            "blob transaction missing blob hashes"
        );
        let mut short = s.clone();
        short.proofs.pop();
        assert_eq!(
            validate_eip4844_sidecar(&h, &short, 9).unwrap_err(),
            "invalid number of 1 blob proofs compared to 2 blob hashes"
        );
    }
}
