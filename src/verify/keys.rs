//! Public keys of `key` authorities and the signatures they check: ECDSA P-256 and P-384,
//! RSA (PKCS#1 v1.5) and Ed25519, with the hash a policy's `hashAlgorithm` asks for.
//!
//! ECDSA goes through the RustCrypto `p256`/`p384` crates with a pre-hashed digest, because
//! cosign lets a P-256 key sign a SHA-224/384/512 digest and no fixed-scheme API covers that;
//! RSA and Ed25519 go through aws-lc-rs.

use std::fmt;

use aws_lc_rs::signature::{self as lc, UnparsedPublicKey};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::pkcs8::DecodePublicKey;
use sha2::Digest;

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_ED25519: &str = "1.3.101.112";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashAlgorithm {
    Sha224,
    #[default]
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlgorithm {
    /// The names policy-controller accepts in `key.hashAlgorithm`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "" | "sha256" => Some(HashAlgorithm::Sha256),
            "sha224" => Some(HashAlgorithm::Sha224),
            "sha384" => Some(HashAlgorithm::Sha384),
            "sha512" => Some(HashAlgorithm::Sha512),
            _ => None,
        }
    }

    fn digest(self, message: &[u8]) -> Vec<u8> {
        match self {
            HashAlgorithm::Sha224 => sha2::Sha224::digest(message).to_vec(),
            HashAlgorithm::Sha256 => sha2::Sha256::digest(message).to_vec(),
            HashAlgorithm::Sha384 => sha2::Sha384::digest(message).to_vec(),
            HashAlgorithm::Sha512 => sha2::Sha512::digest(message).to_vec(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the key is not PEM: {0}")]
    NotPem(String),
    #[error("the PEM block is {0:?}, expected \"PUBLIC KEY\"")]
    WrongPemLabel(String),
    #[error("unsupported public key type (algorithm {0}); use ECDSA P-256/P-384, RSA or Ed25519")]
    Unsupported(String),
    #[error("the public key is malformed: {0}")]
    Malformed(String),
    #[error("{hash:?} cannot be used with an {key} key")]
    HashNotSupported { key: &'static str, hash: HashAlgorithm },
    #[error("the signature does not verify with this key")]
    BadSignature,
    #[error("an {0} signature cannot be checked against a digest alone; give the artifact")]
    DigestOnly(&'static str),
}

/// A parsed public key, with its SubjectPublicKeyInfo DER for comparisons.
#[derive(Clone)]
pub struct PublicKey {
    kind: KeyKind,
    spki_der: Vec<u8>,
}

#[derive(Clone)]
enum KeyKind {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Rsa(Vec<u8>),
    Ed25519(Vec<u8>),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}, {})", self.kind_name(), self.fingerprint())
    }
}

impl PublicKey {
    /// Parses a PEM `PUBLIC KEY` block (the format of `cosign.pub`).
    pub fn from_pem(pem_text: &str) -> Result<Self, KeyError> {
        let block = pem::parse(pem_text.trim()).map_err(|e| KeyError::NotPem(e.to_string()))?;
        if block.tag() != "PUBLIC KEY" {
            return Err(KeyError::WrongPemLabel(block.tag().to_string()));
        }
        Self::from_spki_der(block.contents())
    }

    /// Parses a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let kind = if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            KeyKind::P256(key)
        } else if let Ok(key) = p384::ecdsa::VerifyingKey::from_public_key_der(der) {
            KeyKind::P384(key)
        } else {
            let info = spki::SubjectPublicKeyInfoRef::try_from(der).map_err(|e| KeyError::Malformed(e.to_string()))?;
            let bits = info.subject_public_key.raw_bytes().to_vec();
            match info.algorithm.oid.to_string().as_str() {
                OID_RSA => KeyKind::Rsa(bits),
                OID_ED25519 => KeyKind::Ed25519(bits),
                other => return Err(KeyError::Unsupported(other.to_string())),
            }
        };
        Ok(PublicKey {
            kind,
            spki_der: der.to_vec(),
        })
    }

    /// Parses a bare PKCS#1 RSAPublicKey (how older Sigstore trust roots carry RSA CT keys),
    /// keeping an equivalent SubjectPublicKeyInfo for fingerprints.
    pub fn from_pkcs1_rsa_der(der: &[u8]) -> Result<Self, KeyError> {
        use spki::der::{Encode as _, asn1::BitString};
        // Evaluated at compile time, so a bad constant fails the build, not a request.
        const RSA_ENCRYPTION: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap(OID_RSA);
        let info = spki::SubjectPublicKeyInfoOwned {
            algorithm: spki::AlgorithmIdentifierOwned {
                oid: RSA_ENCRYPTION,
                parameters: Some(spki::der::asn1::Null.into()),
            },
            subject_public_key: BitString::from_bytes(der).map_err(|e| KeyError::Malformed(e.to_string()))?,
        };
        let spki_der = info.to_der().map_err(|e| KeyError::Malformed(e.to_string()))?;
        Ok(PublicKey {
            kind: KeyKind::Rsa(der.to_vec()),
            spki_der,
        })
    }

    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// `sha256:<hex>` of the SubjectPublicKeyInfo, to name the key in messages.
    pub fn fingerprint(&self) -> String {
        format!("sha256:{:x}", sha2::Sha256::digest(&self.spki_der))
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            KeyKind::P256(_) => "ECDSA P-256",
            KeyKind::P384(_) => "ECDSA P-384",
            KeyKind::Rsa(_) => "RSA",
            KeyKind::Ed25519(_) => "Ed25519",
        }
    }

    /// Checks an ECDSA signature over a message of which only the `digest` is known (a
    /// Sigstore bundle verified against `sha256:…` rather than the artifact). RSA PKCS#1 and
    /// Ed25519 sign the message itself here, so they need the artifact.
    pub fn verify_digest(&self, digest: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        let ok = match &self.kind {
            KeyKind::P256(key) => {
                p256::ecdsa::Signature::from_der(signature).is_ok_and(|s| key.verify_prehash(digest, &s).is_ok())
            }
            KeyKind::P384(key) => {
                p384::ecdsa::Signature::from_der(signature).is_ok_and(|s| key.verify_prehash(digest, &s).is_ok())
            }
            KeyKind::Rsa(_) | KeyKind::Ed25519(_) => {
                return Err(KeyError::DigestOnly(self.kind_name()));
            }
        };
        if ok { Ok(()) } else { Err(KeyError::BadSignature) }
    }

    /// Checks a DER (ECDSA) or raw (RSA, Ed25519) signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8], hash: HashAlgorithm) -> Result<(), KeyError> {
        let ok = match &self.kind {
            KeyKind::P256(key) => p256::ecdsa::Signature::from_der(signature)
                .is_ok_and(|s| key.verify_prehash(&hash.digest(message), &s).is_ok()),
            KeyKind::P384(key) => p384::ecdsa::Signature::from_der(signature)
                .is_ok_and(|s| key.verify_prehash(&hash.digest(message), &s).is_ok()),
            KeyKind::Rsa(der) => {
                let algorithm: &dyn lc::VerificationAlgorithm = match hash {
                    HashAlgorithm::Sha256 => &lc::RSA_PKCS1_2048_8192_SHA256,
                    HashAlgorithm::Sha384 => &lc::RSA_PKCS1_2048_8192_SHA384,
                    HashAlgorithm::Sha512 => &lc::RSA_PKCS1_2048_8192_SHA512,
                    HashAlgorithm::Sha224 => {
                        return Err(KeyError::HashNotSupported { key: "RSA", hash });
                    }
                };
                UnparsedPublicKey::new(algorithm, der)
                    .verify(message, signature)
                    .is_ok()
            }
            // Ed25519 signs the message itself; cosign ignores the hash choice for it.
            KeyKind::Ed25519(raw) => UnparsedPublicKey::new(&lc::ED25519, raw)
                .verify(message, signature)
                .is_ok(),
        };
        if ok { Ok(()) } else { Err(KeyError::BadSignature) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn spki_pem(der: &[u8]) -> String {
        pem::encode(&pem::Pem::new("PUBLIC KEY", der.to_vec()))
    }

    fn p256_spki(raw_point: &[u8]) -> Vec<u8> {
        // SEQUENCE { SEQUENCE { ecPublicKey, prime256v1 }, BIT STRING point }
        let mut der = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
            0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        der.extend_from_slice(raw_point);
        der
    }

    #[test]
    fn ecdsa_p256_with_every_hash() {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        use p256::pkcs8::EncodePublicKey;
        let signing = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let der = signing.verifying_key().to_public_key_der().unwrap();
        let key = PublicKey::from_pem(&spki_pem(der.as_bytes())).unwrap();
        assert_eq!(key.kind_name(), "ECDSA P-256");
        let hashes = [
            HashAlgorithm::Sha224,
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha384,
            HashAlgorithm::Sha512,
        ];
        for hash in hashes {
            let signature: p256::ecdsa::Signature = signing.sign_prehash(&hash.digest(b"payload")).unwrap();
            let der_signature = signature.to_der();
            let bytes = der_signature.as_bytes();
            assert_eq!(key.verify(b"payload", bytes, hash), Ok(()), "{hash:?}");
            assert_eq!(key.verify(b"tampered", bytes, hash), Err(KeyError::BadSignature));
            for other in hashes.iter().filter(|h| **h != hash) {
                assert_eq!(
                    key.verify(b"payload", bytes, *other),
                    Err(KeyError::BadSignature),
                    "{hash:?} vs {other:?}"
                );
            }
        }
        assert_eq!(
            key.verify(b"payload", b"not der", HashAlgorithm::Sha256),
            Err(KeyError::BadSignature)
        );
    }

    #[test]
    fn aws_lc_ecdsa_signatures_verify() {
        let rng = SystemRandom::new();
        let alg = &lc::ECDSA_P256_SHA256_ASN1_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).unwrap();
        let key = PublicKey::from_spki_der(&p256_spki(pair.public_key().as_ref())).unwrap();
        let signature = pair.sign(&rng, b"payload").unwrap();
        assert_eq!(
            key.verify(b"payload", signature.as_ref(), HashAlgorithm::Sha256),
            Ok(())
        );
    }

    #[test]
    fn ecdsa_p384_and_rsa_verify_with_their_hashes() {
        use aws_lc_rs::encoding::AsDer;
        let rng = SystemRandom::new();
        let alg = &lc::ECDSA_P384_SHA384_ASN1_SIGNING;
        let pair = EcdsaKeyPair::generate(alg).unwrap();
        let der = pair.public_key().as_der().unwrap();
        let key = PublicKey::from_spki_der(der.as_ref()).unwrap();
        assert_eq!(key.kind_name(), "ECDSA P-384");
        let signature = pair.sign(&rng, b"payload").unwrap();
        assert_eq!(
            key.verify(b"payload", signature.as_ref(), HashAlgorithm::Sha384),
            Ok(())
        );
        assert_eq!(
            key.verify(b"payload", signature.as_ref(), HashAlgorithm::Sha256),
            Err(KeyError::BadSignature)
        );

        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der = rsa.public_key().as_der().unwrap();
        let key = PublicKey::from_spki_der(der.as_ref()).unwrap();
        assert_eq!(key.kind_name(), "RSA");
        for (hash, padding) in [
            (HashAlgorithm::Sha256, &lc::RSA_PKCS1_SHA256),
            (HashAlgorithm::Sha512, &lc::RSA_PKCS1_SHA512),
        ] {
            let mut signature = vec![0; rsa.public_modulus_len()];
            rsa.sign(padding, &rng, b"payload", &mut signature).unwrap();
            assert_eq!(key.verify(b"payload", &signature, hash), Ok(()), "{hash:?}");
            assert_eq!(key.verify(b"other", &signature, hash), Err(KeyError::BadSignature));
        }
        assert!(matches!(
            key.verify(b"payload", b"x", HashAlgorithm::Sha224),
            Err(KeyError::HashNotSupported { .. })
        ));
    }

    #[test]
    fn ed25519_verifies() {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let mut der = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
        der.extend_from_slice(pair.public_key().as_ref());
        let key = PublicKey::from_spki_der(&der).unwrap();
        assert_eq!(key.kind_name(), "Ed25519");
        let signature = pair.sign(b"payload");
        assert_eq!(
            key.verify(b"payload", signature.as_ref(), HashAlgorithm::Sha256),
            Ok(())
        );
        assert_eq!(
            key.verify(b"other", signature.as_ref(), HashAlgorithm::Sha256),
            Err(KeyError::BadSignature)
        );
    }

    #[test]
    fn rejects_what_is_not_a_public_key() {
        assert!(matches!(PublicKey::from_pem("hello"), Err(KeyError::NotPem(_))));
        let cert = pem::encode(&pem::Pem::new("CERTIFICATE", vec![1, 2, 3]));
        assert!(matches!(PublicKey::from_pem(&cert), Err(KeyError::WrongPemLabel(_))));
        let junk = pem::encode(&pem::Pem::new("PUBLIC KEY", vec![1, 2, 3]));
        assert!(matches!(PublicKey::from_pem(&junk), Err(KeyError::Malformed(_))));
    }

    #[test]
    fn hash_names() {
        assert_eq!(HashAlgorithm::from_name("sha384"), Some(HashAlgorithm::Sha384));
        assert_eq!(HashAlgorithm::from_name(""), Some(HashAlgorithm::Sha256));
        assert_eq!(HashAlgorithm::from_name("shaINVALID"), None);
    }
}
