//! The little DER this module needs: ECDSA signatures (`SEQUENCE { r INTEGER, s INTEGER }`) and
//! elliptic-curve SubjectPublicKeyInfo, read and written by hand so that every malformation gets its
//! own precise error.

/// `id-ecPublicKey` (1.2.840.10045.2.1), the content bytes of the OID.
pub const EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OID: u8 = 0x06;

/// One tag-length-value and what follows it.
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let (&tag, rest) = input.split_first().ok_or("unexpected end of data")?;
    let (&first, rest) = rest.split_first().ok_or("missing length")?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n {
            return Err("bad length".into());
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(format!("length {len} runs past the end of the data"));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect<'a>(input: &'a [u8], want: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), String> {
    let (tag, value, rest) = tlv(input)?;
    if tag != want {
        return Err(format!("expected {what} (tag {want:#04x}), found tag {tag:#04x}"));
    }
    Ok((value, rest))
}

/// A DER ECDSA signature's two integers, big-endian without leading zeros.
pub struct DerSignature {
    pub r: Vec<u8>,
    pub s: Vec<u8>,
    /// False when an integer carries more leading zero bytes than DER allows (some meters pad
    /// integers to a fixed width; OpenSSL and BouncyCastle reject that).
    pub canonical: bool,
}

/// Parse `SEQUENCE { INTEGER r, INTEGER s }` with nothing after it.
pub fn read_signature(input: &[u8]) -> Result<DerSignature, String> {
    let (body, rest) = expect(input, SEQUENCE, "SEQUENCE")?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the signature", rest.len()));
    }
    let (r, body) = expect(body, INTEGER, "INTEGER r")?;
    let (s, body) = expect(body, INTEGER, "INTEGER s")?;
    if !body.is_empty() {
        return Err("more than two integers in the signature".into());
    }
    let (r, r_ok) = unsigned(r)?;
    let (s, s_ok) = unsigned(s)?;
    Ok(DerSignature {
        r,
        s,
        canonical: r_ok && s_ok,
    })
}

/// A positive DER INTEGER's magnitude; the flag says whether the encoding was minimal.
fn unsigned(v: &[u8]) -> Result<(Vec<u8>, bool), String> {
    if v.is_empty() {
        return Err("empty INTEGER".into());
    }
    if v[0] & 0x80 != 0 {
        return Err("negative INTEGER".into());
    }
    let minimal = !(v.len() > 1 && v[0] == 0 && v[1] & 0x80 == 0);
    let start = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    Ok((v[start..].to_vec(), minimal))
}

/// The parts of an EC SubjectPublicKeyInfo.
pub struct Spki<'a> {
    /// Content bytes of the algorithm OID.
    pub algorithm: &'a [u8],
    /// Content bytes of the named-curve OID; `None` when the parameters are not an OID
    /// (explicit curve parameters or NULL).
    pub curve: Option<&'a [u8]>,
    /// The SEC1 point from the BIT STRING.
    pub point: &'a [u8],
}

pub fn read_spki(input: &[u8]) -> Result<Spki<'_>, String> {
    let (body, rest) = expect(input, SEQUENCE, "SEQUENCE")?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the key", rest.len()));
    }
    let (alg, body) = expect(body, SEQUENCE, "AlgorithmIdentifier")?;
    let (algorithm, params) = expect(alg, OID, "algorithm OID")?;
    let curve = match tlv(params) {
        Ok((OID, oid, [])) => Some(oid),
        _ => None,
    };
    let (bits, rest) = expect(body, BIT_STRING, "BIT STRING")?;
    if !rest.is_empty() {
        return Err("data after the BIT STRING".into());
    }
    match bits.split_first() {
        Some((0, point)) => Ok(Spki {
            algorithm,
            curve,
            point,
        }),
        Some(_) => Err("BIT STRING with unused bits".into()),
        None => Err("empty BIT STRING".into()),
    }
}

fn push_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(value);
}

/// SubjectPublicKeyInfo DER for a named curve and a SEC1 point.
pub fn write_spki(curve_oid: &[u8], point: &[u8]) -> Vec<u8> {
    let mut alg = Vec::new();
    push_tlv(&mut alg, OID, EC_PUBLIC_KEY);
    push_tlv(&mut alg, OID, curve_oid);
    let mut bits = vec![0u8];
    bits.extend_from_slice(point);
    let mut body = Vec::new();
    push_tlv(&mut body, SEQUENCE, &alg);
    push_tlv(&mut body, BIT_STRING, &bits);
    let mut out = Vec::new();
    push_tlv(&mut out, SEQUENCE, &body);
    out
}

/// DER for an ECDSA signature from big-endian r and s (for test vectors).
#[cfg(test)]
pub fn write_signature(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn int(out: &mut Vec<u8>, v: &[u8]) {
        let start = v.iter().position(|b| *b != 0).unwrap_or(v.len().saturating_sub(1));
        let v = &v[start..];
        let mut bytes = Vec::with_capacity(v.len() + 1);
        if v.first().is_none_or(|b| b & 0x80 != 0) {
            bytes.push(0);
        }
        bytes.extend_from_slice(v);
        push_tlv(out, INTEGER, &bytes);
    }
    let mut body = Vec::new();
    int(&mut body, r);
    int(&mut body, s);
    let mut out = Vec::new();
    push_tlv(&mut out, SEQUENCE, &body);
    out
}

/// Dotted form of an OID's content bytes, for messages.
pub fn oid_to_string(oid: &[u8]) -> String {
    let mut parts: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for b in oid {
        acc = (acc << 7) | u64::from(b & 0x7F);
        if b & 0x80 == 0 {
            if parts.is_empty() {
                let first = if acc < 80 { acc / 40 } else { 2 };
                parts.push(first);
                parts.push(acc - first * 40);
            } else {
                parts.push(acc);
            }
            acc = 0;
        }
    }
    parts.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trip_and_padding() {
        let der = write_signature(&[0x80, 1], &[0, 0, 5]);
        assert_eq!(der, [0x30, 0x08, 0x02, 0x03, 0x00, 0x80, 0x01, 0x02, 0x01, 0x05]);
        let sig = read_signature(&der).unwrap();
        assert_eq!((sig.r, sig.s, sig.canonical), (vec![0x80, 1], vec![5], true));
        // fixed-width integer with a superfluous leading zero: readable, flagged
        let sig = read_signature(&[0x30, 0x07, 0x02, 0x02, 0x00, 0x7D, 0x02, 0x01, 0x05]).unwrap();
        assert_eq!((sig.r, sig.canonical), (vec![0x7D], false));
        // trailing bytes, negative integers, a third integer
        assert!(read_signature(&[0x30, 0x03, 0x02, 0x01, 0x05, 0x00]).is_err());
        assert!(read_signature(&[0x30, 0x06, 0x02, 0x01, 0x85, 0x02, 0x01, 0x05]).is_err());
        assert!(read_signature(&[0x30, 0x09, 0x02, 0x01, 1, 0x02, 0x01, 2, 0x02, 0x01, 3]).is_err());
    }

    #[test]
    fn oids_print_dotted() {
        assert_eq!(oid_to_string(EC_PUBLIC_KEY), "1.2.840.10045.2.1");
        assert_eq!(oid_to_string(&[0x2B, 0x81, 0x04, 0x00, 0x22]), "1.3.132.0.34");
    }
}
