//! Transparency-log inclusion: an RFC 6962 Merkle inclusion proof from a logged entry to a
//! tree root, and the log's signed checkpoint (a "signed note") that commits to that root.
//! With both, an entry is proven to be in the log without asking the log anything.
//!
//! The proof arithmetic is `sigstore-merkle`'s and the note parsing `sigstore-types`'; signet
//! keeps the binding to its trust root's log keys (which signature counts) and the match
//! between the proof and the checkpoint.

use sigstore_types::{Checkpoint as SignedNote, Sha256Hash};

use super::keys::HashAlgorithm;
use super::trust::LogKey;

/// The longest proof accepted: a tree of 2^64 leaves needs 64 hashes.
const MAX_PROOF_HASHES: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InclusionError {
    #[error("the inclusion proof is malformed: {0}")]
    Malformed(String),
    #[error("the inclusion proof does not lead to the root hash it claims")]
    RootMismatch,
    #[error("the checkpoint is malformed: {0}")]
    BadCheckpoint(String),
    #[error("the checkpoint is for another tree: {0}")]
    CheckpointMismatch(String),
    #[error("no checkpoint signature from {log} verifies")]
    CheckpointUnsigned { log: String },
}

/// An inclusion proof as a bundle carries it.
pub struct InclusionProof<'a> {
    pub log_index: u64,
    pub tree_size: u64,
    pub root_hash: &'a [u8],
    pub hashes: &'a [Vec<u8>],
}

/// RFC 6962 leaf hash of a logged entry body.
pub fn leaf_hash(body: &[u8]) -> [u8; 32] {
    *sigstore_merkle::hash_leaf(body).as_bytes()
}

fn sha256_hash(bytes: &[u8]) -> Result<Sha256Hash, InclusionError> {
    Sha256Hash::try_from(bytes).map_err(|e| InclusionError::Malformed(e.to_string()))
}

/// Checks that `leaf` sits at `proof.log_index` of the tree whose root is `proof.root_hash`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: [u8; 32], proof: &InclusionProof) -> Result<(), InclusionError> {
    if proof.hashes.len() > MAX_PROOF_HASHES {
        return Err(InclusionError::Malformed("more than 64 hashes".into()));
    }
    let hashes = proof
        .hashes
        .iter()
        .map(|h| sha256_hash(h))
        .collect::<Result<Vec<_>, _>>()?;
    let root = sha256_hash(proof.root_hash)?;
    sigstore_merkle::verify_inclusion_proof(&Sha256Hash::new(leaf), proof.log_index, proof.tree_size, &hashes, &root)
        .map_err(|e| match e {
            sigstore_merkle::Error::RootMismatch { .. } => InclusionError::RootMismatch,
            other => InclusionError::Malformed(other.to_string()),
        })
}

/// A checkpoint's body: origin, tree size and root hash (further lines are opaque).
#[derive(Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub tree_size: u64,
    pub root_hash: Vec<u8>,
}

/// Verifies a signed checkpoint against `log` and returns its body. Only signatures whose
/// key hint names the log count; witness co-signatures and other keys are ignored. (The
/// signer name is not compared with the origin: Rekor v1 signs "rekor.sigstore.dev" under
/// the origin "rekor.sigstore.dev - <tree id>".)
pub fn verify_checkpoint(envelope: &str, log: &LogKey) -> Result<Checkpoint, InclusionError> {
    let note = SignedNote::from_text(envelope).map_err(|e| InclusionError::BadCheckpoint(e.to_string()))?;
    let hint = log_key_hint(log)?;
    let signed = note.signatures_by_key_hint(&hint).any(|s| {
        log.key
            .verify(note.signed_data(), s.signature.as_bytes(), HashAlgorithm::Sha256)
            .is_ok()
    });
    if !signed {
        return Err(InclusionError::CheckpointUnsigned {
            log: log.base_url.clone(),
        });
    }
    Ok(Checkpoint {
        origin: note.origin().to_string(),
        tree_size: note.tree_size(),
        root_hash: note.root_hash().as_slice().to_vec(),
    })
}

/// The signed note key hint: the first four bytes of the log's id.
fn log_key_hint(log: &LogKey) -> Result<sigstore_types::KeyHint, InclusionError> {
    let mut hint = [0u8; 4];
    log.log_id
        .get(..8)
        .and_then(|prefix| hex::decode_to_slice(prefix, &mut hint).ok())
        .ok_or_else(|| InclusionError::BadCheckpoint(format!("log id {:?} is not hex", log.log_id)))?;
    Ok(sigstore_types::KeyHint::new(hint))
}

/// The checkpoint must commit to the same tree the proof was computed against.
pub fn check_checkpoint_matches(checkpoint: &Checkpoint, proof: &InclusionProof) -> Result<(), InclusionError> {
    if checkpoint.tree_size != proof.tree_size {
        return Err(InclusionError::CheckpointMismatch(format!(
            "size {} vs the proof's {}",
            checkpoint.tree_size, proof.tree_size
        )));
    }
    if checkpoint.root_hash != proof.root_hash {
        return Err(InclusionError::CheckpointMismatch(
            "the root hash differs from the proof's".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds the full tree over `leaves` the slow, obvious way (RFC 6962 §2.1).
    fn tree_root(leaves: &[[u8; 32]]) -> [u8; 32] {
        if leaves.len() == 1 {
            return leaves[0];
        }
        let split = leaves.len().next_power_of_two() / 2;
        let (left, right) = (tree_root(&leaves[..split]), tree_root(&leaves[split..]));
        *sigstore_merkle::hash_children(&Sha256Hash::new(left), &Sha256Hash::new(right)).as_bytes()
    }

    fn audit_path(index: usize, leaves: &[[u8; 32]]) -> Vec<Vec<u8>> {
        if leaves.len() == 1 {
            return Vec::new();
        }
        let split = leaves.len().next_power_of_two() / 2;
        let (mut path, sibling) = if index < split {
            (audit_path(index, &leaves[..split]), tree_root(&leaves[split..]))
        } else {
            (audit_path(index - split, &leaves[split..]), tree_root(&leaves[..split]))
        };
        path.push(sibling.to_vec());
        path
    }

    #[test]
    fn proofs_from_a_reference_tree_verify_and_tampering_fails() {
        for size in 1..=17usize {
            let leaves: Vec<[u8; 32]> = (0..size).map(|i| leaf_hash(format!("entry {i}").as_bytes())).collect();
            let root = tree_root(&leaves);
            for index in 0..size {
                let hashes = audit_path(index, &leaves);
                let proof = InclusionProof {
                    log_index: index as u64,
                    tree_size: size as u64,
                    root_hash: &root,
                    hashes: &hashes,
                };
                assert_eq!(verify_inclusion(leaves[index], &proof), Ok(()), "{index} of {size}");
                let other = leaf_hash(b"not in the tree");
                assert_eq!(verify_inclusion(other, &proof), Err(InclusionError::RootMismatch));
                if let Some(first) = hashes.first() {
                    let mut flipped = hashes.clone();
                    flipped[0] = first.iter().map(|b| b ^ 1).collect();
                    let proof = InclusionProof {
                        hashes: &flipped,
                        ..proof
                    };
                    assert_eq!(
                        verify_inclusion(leaves[index], &proof),
                        Err(InclusionError::RootMismatch)
                    );
                }
            }
        }
    }

    #[test]
    fn malformed_proofs_are_errors_not_panics() {
        let root = [0u8; 32];
        let hashes = vec![vec![0u8; 32]; 3];
        for (index, size) in [(5, 5), (0, 0), (u64::MAX, u64::MAX), (0, u64::MAX)] {
            let proof = InclusionProof {
                log_index: index,
                tree_size: size,
                root_hash: &root,
                hashes: &hashes,
            };
            assert!(matches!(
                verify_inclusion([0; 32], &proof),
                Err(InclusionError::Malformed(_))
            ));
        }
    }

    #[test]
    fn notes_need_origin_size_root_and_a_signature_block() {
        use base64::Engine as _;
        let log = LogKey {
            base_url: "https://log.example".into(),
            log_id: "0011223344556677".into(),
            key: crate::verify::keys::PublicKey::from_pem(TEST_KEY).unwrap(),
            valid_from: None,
            valid_until: None,
        };
        let root = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let unsigned = format!("log.example\n12\n{root}\n\n\u{2014} log.example AAECAwQFBgc=\n");
        assert_eq!(
            verify_checkpoint(&unsigned, &log),
            Err(InclusionError::CheckpointUnsigned {
                log: "https://log.example".into()
            })
        );
        for bad in [
            format!("\n12\n{root}\n\n"),
            format!("12\n{root}\n\n"),
            "log.example\n12\n\n".to_string(),
            format!("log.example\n-1\n{root}\n\n"),
            "log.example\n12\nAAAA\n\n".to_string(),
            format!("log.example\n12\n{root}\n"),
        ] {
            assert!(
                matches!(verify_checkpoint(&bad, &log), Err(InclusionError::BadCheckpoint(_))),
                "{bad:?}"
            );
        }
    }

    const TEST_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEZxAfzrQG1EbWyCI8LiSB7YgSFXoI\nFNGTyQGKHFc6/H8TQumT9VLS78pUwtv3w7EfKoyFZoP32KrO7nzUy2q6Cw==\n-----END PUBLIC KEY-----\n";
}
