//! Transparency-log inclusion: an RFC 6962 Merkle inclusion proof from a logged entry to a
//! tree root, and the log's signed checkpoint (a "signed note") that commits to that root.
//! With both, an entry is proven to be in the log without asking the log anything.

use base64::Engine as _;
use sha2::{Digest, Sha256};

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
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(body);
    hasher.finalize().into()
}

fn node_hash(left: &[u8], right: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// Checks that `leaf` sits at `proof.log_index` of the tree whose root is `proof.root_hash`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: [u8; 32], proof: &InclusionProof) -> Result<(), InclusionError> {
    let (index, size) = (proof.log_index, proof.tree_size);
    if index >= size {
        return Err(InclusionError::Malformed(format!(
            "index {index} is outside a tree of size {size}"
        )));
    }
    if proof.hashes.len() > MAX_PROOF_HASHES || proof.hashes.iter().any(|h| h.len() != 32) {
        return Err(InclusionError::Malformed(
            "hashes must be at most 64 SHA-256 values".into(),
        ));
    }
    // The path splits into hashes below the point where the leaf's and the last leaf's
    // paths diverge ("inner") and the right border above it.
    let inner = (u64::BITS - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = index.checked_shr(inner as u32).unwrap_or(0).count_ones() as usize;
    if proof.hashes.len() != inner + border {
        return Err(InclusionError::Malformed(format!(
            "{} hashes for index {index} of {size}; expected {}",
            proof.hashes.len(),
            inner + border
        )));
    }
    let mut root = leaf;
    for (level, sibling) in proof.hashes[..inner].iter().enumerate() {
        root = if (index >> level) & 1 == 0 {
            node_hash(&root, sibling)
        } else {
            node_hash(sibling, &root)
        };
    }
    for sibling in &proof.hashes[inner..] {
        root = node_hash(sibling, &root);
    }
    if root.as_slice() == proof.root_hash {
        Ok(())
    } else {
        Err(InclusionError::RootMismatch)
    }
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
    let bad = |detail: &str| InclusionError::BadCheckpoint(detail.to_string());
    let (note, signatures) = envelope
        .split_once("\n\n")
        .ok_or_else(|| bad("no blank line between the note and its signatures"))?;
    let note = format!("{note}\n");
    let checkpoint = parse_note(&note)?;
    let hint = log_key_hint(log)?;
    let signed = signatures
        .lines()
        .filter_map(|line| line.strip_prefix("\u{2014} "))
        .filter_map(|line| line.split_once(' '))
        .filter_map(|(_, signature)| base64::engine::general_purpose::STANDARD.decode(signature).ok())
        .filter(|raw| raw.len() > 4 && raw[..4] == hint)
        .any(|raw| {
            log.key
                .verify(note.as_bytes(), &raw[4..], HashAlgorithm::Sha256)
                .is_ok()
        });
    if signed {
        Ok(checkpoint)
    } else {
        Err(InclusionError::CheckpointUnsigned {
            log: log.base_url.clone(),
        })
    }
}

/// The signed note key hint: the first four bytes of the log's id.
fn log_key_hint(log: &LogKey) -> Result<[u8; 4], InclusionError> {
    let prefix = log.log_id.get(..8).unwrap_or_default();
    let mut hint = [0u8; 4];
    for (i, byte) in hint.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&prefix[2 * i..2 * i + 2], 16)
            .map_err(|_| InclusionError::BadCheckpoint(format!("log id {:?} is not hex", log.log_id)))?;
    }
    Ok(hint)
}

fn parse_note(note: &str) -> Result<Checkpoint, InclusionError> {
    let bad = |detail: String| InclusionError::BadCheckpoint(detail);
    let mut lines = note.lines();
    let origin = lines.next().unwrap_or_default();
    if origin.is_empty() {
        return Err(bad("the origin line is empty".into()));
    }
    let size_line = lines.next().unwrap_or_default();
    let tree_size = size_line
        .parse::<u64>()
        .map_err(|_| bad(format!("tree size {size_line:?} is not a number")))?;
    let root_line = lines.next().unwrap_or_default();
    let root_hash = base64::engine::general_purpose::STANDARD
        .decode(root_line)
        .map_err(|_| bad(format!("root hash {root_line:?} is not base64")))?;
    if root_hash.len() != 32 {
        return Err(bad("the root hash is not a SHA-256 value".into()));
    }
    Ok(Checkpoint {
        origin: origin.to_string(),
        tree_size,
        root_hash,
    })
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
        node_hash(&tree_root(&leaves[..split]), &tree_root(&leaves[split..]))
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
    fn notes_need_origin_size_and_root() {
        let root = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let good = parse_note(&format!("log.example\n12\n{root}\nTimestamp: 1\n")).unwrap();
        assert_eq!(good.origin, "log.example");
        assert_eq!(good.tree_size, 12);
        for bad in [
            format!("\n12\n{root}\n"),
            format!("12\n{root}\n"),
            "log.example\n12\n".to_string(),
            format!("log.example\n-1\n{root}\n"),
            "log.example\n12\nAAAA\n".to_string(),
        ] {
            assert!(parse_note(&bad).is_err(), "{bad:?}");
        }
    }
}
