//! Embedded Signed Certificate Timestamps (RFC 6962 §3.2): proof that a Fulcio certificate
//! was logged in a certificate transparency log of the trust root.
//!
//! The log signed the *pre*-certificate, so the signed bytes are rebuilt from the leaf: its
//! TBSCertificate without the SCT-list extension. No crate rebuilds that, so the DER surgery
//! is done here on the raw bytes (single-byte tags, definite lengths — what DER guarantees).

use sha2::Digest;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;

use super::keys::HashAlgorithm;
use super::trust::TrustRoot;

/// DER of OID 1.3.6.1.4.1.11129.2.4.2 (embedded SCT list), tag and length included.
const SCT_LIST_OID: &[u8] = &[0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x02];

/// Checks that at least one embedded SCT verifies with a CT log of the trust root; returns
/// the log's URL.
pub fn verify_embedded_sct(
    leaf: &X509Certificate,
    issuer_spki_der: &[u8],
    trust: &TrustRoot,
) -> Result<String, String> {
    let scts = leaf
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SCT(list) => Some(list.clone()),
            _ => None,
        })
        .ok_or("the certificate has no embedded SCT (set insecureIgnoreSCT to accept that)")?;
    let tbs = remove_extension(leaf.tbs_certificate.as_ref(), SCT_LIST_OID)?;
    let issuer_key_hash = sha2::Sha256::digest(issuer_spki_der);
    let mut failures = Vec::new();
    for sct in &scts {
        let Some(log) = trust.ctlog(sct.id.key_id) else {
            failures.push("an SCT from a log the trust root does not know".to_string());
            continue;
        };
        let millis = i128::from(sct.timestamp) * 1_000_000;
        let logged_at = OffsetDateTime::from_unix_timestamp_nanos(millis).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        if !log.valid_at(logged_at) {
            failures.push(format!("an SCT from {} outside the log's validity", log.base_url));
            continue;
        }
        let mut signed = vec![sct.version.0, 0];
        signed.extend_from_slice(&sct.timestamp.to_be_bytes());
        signed.extend_from_slice(&[0, 1]);
        signed.extend_from_slice(&issuer_key_hash);
        signed.extend_from_slice(&u24(tbs.len())?);
        signed.extend_from_slice(&tbs);
        let extensions: &[u8] = sct.extensions.0;
        signed.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
        signed.extend_from_slice(extensions);
        match log.key.verify(&signed, sct.signature.data, HashAlgorithm::Sha256) {
            Ok(()) => return Ok(log.base_url.clone()),
            Err(_) => failures.push(format!("an SCT from {} whose signature does not verify", log.base_url)),
        }
    }
    Err(format!("no embedded SCT verifies: {}", failures.join("; ")))
}

fn u24(length: usize) -> Result<[u8; 3], String> {
    if length >= 1 << 24 {
        return Err("the certificate is too large for an SCT".to_string());
    }
    Ok([(length >> 16) as u8, (length >> 8) as u8, length as u8])
}

/// One DER element: its tag, its header+content, and its content.
struct Tlv<'a> {
    tag: u8,
    whole: &'a [u8],
    content: &'a [u8],
}

fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), String> {
    let malformed = || "the certificate's DER is malformed".to_string();
    let (&tag, rest) = input.split_first().ok_or_else(malformed)?;
    let (&first, rest) = rest.split_first().ok_or_else(malformed)?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return Err(malformed());
        }
        let length = rest[..count].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (length, &rest[count..])
    };
    if rest.len() < length {
        return Err(malformed());
    }
    let header_len = input.len() - rest.len();
    let tlv = Tlv {
        tag,
        whole: &input[..header_len + length],
        content: &rest[..length],
    };
    Ok((tlv, &rest[length..]))
}

fn children(mut content: &[u8]) -> Result<Vec<Tlv<'_>>, String> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (tlv, rest) = read_tlv(content)?;
        out.push(tlv);
        content = rest;
    }
    Ok(out)
}

fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let length = content.len();
    if length < 0x80 {
        out.push(length as u8);
    } else {
        let bytes: Vec<u8> = length.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

/// The TBSCertificate `tbs` without the extension whose OID (DER, with tag) is `oid`.
fn remove_extension(tbs: &[u8], oid: &[u8]) -> Result<Vec<u8>, String> {
    let (sequence, _) = read_tlv(tbs)?;
    let mut fields = Vec::new();
    for field in children(sequence.content)? {
        if field.tag != 0xa3 {
            fields.extend_from_slice(field.whole);
            continue;
        }
        let (extensions, _) = read_tlv(field.content)?;
        let kept: Vec<u8> = children(extensions.content)?
            .iter()
            .filter(|extension| !extension.content.starts_with(oid))
            .flat_map(|extension| extension.whole.iter().copied())
            .collect();
        fields.extend_from_slice(&encode(0xa3, &encode(0x30, &kept)));
    }
    Ok(encode(sequence.tag, &fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_round_trip() {
        for length in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let content = vec![7u8; length];
            let encoded = encode(0x30, &content);
            let (tlv, rest) = read_tlv(&encoded).unwrap();
            assert!(rest.is_empty());
            assert_eq!(tlv.content.len(), length);
        }
        assert!(read_tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_err());
        assert!(read_tlv(&[0x30, 0x05, 1]).is_err());
        assert!(read_tlv(&[]).is_err());
    }

    #[test]
    fn removes_only_the_named_extension() {
        let ext = |oid: &[u8], value: &[u8]| encode(0x30, &[oid, &encode(0x04, value)].concat());
        let other_oid = [0x06, 0x03, 0x55, 0x1d, 0x0f];
        let extensions = [ext(&other_oid, b"ku"), ext(SCT_LIST_OID, b"scts")].concat();
        let tbs = encode(
            0x30,
            &[encode(0x02, &[1]), encode(0xa3, &encode(0x30, &extensions))].concat(),
        );
        let stripped = remove_extension(&tbs, SCT_LIST_OID).unwrap();
        let expected = encode(
            0x30,
            &[encode(0x02, &[1]), encode(0xa3, &encode(0x30, &ext(&other_oid, b"ku")))].concat(),
        );
        assert_eq!(stripped, expected);
    }
}
