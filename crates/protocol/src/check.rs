//! Check digits of Brazilian identifiers and GTIN barcodes.
//!
//! These run on every import line at the central, on every feed row the store
//! applies and on every POS write, so they are allocation-free.

/// Why an identifier was refused; rendered into the error that names the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckError {
    /// Not all ASCII digits, or the wrong number of them.
    Format(&'static str),
    /// Digits are fine, the check digit is not.
    CheckDigit,
}

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckError::Format(what) => write!(f, "must be {what}"),
            CheckError::CheckDigit => f.write_str("bad check digit"),
        }
    }
}

fn digits<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != N || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut out = [0u8; N];
    for (o, c) in out.iter_mut().zip(b) {
        *o = c - b'0';
    }
    Some(out)
}

/// GTIN-8, -12, -13 or -14 (EAN/UPC), mod-10 with weights 3,1 from the right.
pub fn gtin(s: &str) -> Result<(), CheckError> {
    let b = s.as_bytes();
    if !matches!(b.len(), 8 | 12 | 13 | 14) || !b.iter().all(u8::is_ascii_digit) {
        return Err(CheckError::Format("8, 12, 13 or 14 digits"));
    }
    let (body, check) = b.split_at(b.len() - 1);
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, c)| u32::from(c - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    if (10 - sum % 10) % 10 == u32::from(check[0] - b'0') {
        Ok(())
    } else {
        Err(CheckError::CheckDigit)
    }
}

/// The GTIN check digit for a body (all digits but the last); used by generators.
pub fn gtin_check_digit(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| u32::from(*d) * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

fn mod11(ds: &[u8], weights: impl Iterator<Item = u32>) -> u8 {
    let sum: u32 = ds.iter().zip(weights).map(|(d, w)| u32::from(*d) * w).sum();
    let r = sum % 11;
    if r < 2 { 0 } else { (11 - r) as u8 }
}

/// The two CPF check digits for its first nine digits.
pub fn cpf_check_digits(body: &[u8; 9]) -> [u8; 2] {
    let d1 = mod11(body, (2..=10).rev());
    let mut ten = [0u8; 10];
    ten[..9].copy_from_slice(body);
    ten[9] = d1;
    let d2 = mod11(&ten, (2..=11).rev());
    [d1, d2]
}

/// CPF: 11 digits, two mod-11 check digits; all-equal digits are refused.
pub fn cpf(s: &str) -> Result<(), CheckError> {
    let d = digits::<11>(s).ok_or(CheckError::Format("11 digits"))?;
    if d.iter().all(|x| *x == d[0]) {
        return Err(CheckError::CheckDigit);
    }
    let body: [u8; 9] = d[..9]
        .try_into()
        .map_err(|_| CheckError::Format("11 digits"))?;
    if cpf_check_digits(&body) == [d[9], d[10]] {
        Ok(())
    } else {
        Err(CheckError::CheckDigit)
    }
}

/// The two CNPJ check digits for its first twelve digits.
pub fn cnpj_check_digits(body: &[u8; 12]) -> [u8; 2] {
    const W1: [u32; 12] = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];
    const W2: [u32; 13] = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];
    let d1 = mod11(body, W1.into_iter());
    let mut thirteen = [0u8; 13];
    thirteen[..12].copy_from_slice(body);
    thirteen[12] = d1;
    let d2 = mod11(&thirteen, W2.into_iter());
    [d1, d2]
}

/// CNPJ: 14 digits, two mod-11 check digits; all-equal digits are refused.
pub fn cnpj(s: &str) -> Result<(), CheckError> {
    let d = digits::<14>(s).ok_or(CheckError::Format("14 digits"))?;
    if d.iter().all(|x| *x == d[0]) {
        return Err(CheckError::CheckDigit);
    }
    let body: [u8; 12] = d[..12]
        .try_into()
        .map_err(|_| CheckError::Format("14 digits"))?;
    if cnpj_check_digits(&body) == [d[12], d[13]] {
        Ok(())
    } else {
        Err(CheckError::CheckDigit)
    }
}

/// A customer document: a CPF (11 digits) or a CNPJ (14 digits).
pub fn cpf_or_cnpj(s: &str) -> Result<(), CheckError> {
    match s.len() {
        11 => cpf(s),
        14 => cnpj(s),
        _ => Err(CheckError::Format(
            "a CPF (11 digits) or a CNPJ (14 digits)",
        )),
    }
}

/// NCM: exactly 8 digits (no check digit).
pub fn ncm(s: &str) -> Result<(), CheckError> {
    digits::<8>(s)
        .map(|_| ())
        .ok_or(CheckError::Format("8 digits"))
}

/// A Brazilian state (UF): two upper-case letters.
pub fn uf(s: &str) -> Result<(), CheckError> {
    let b = s.as_bytes();
    if b.len() == 2 && b.iter().all(u8::is_ascii_uppercase) {
        Ok(())
    } else {
        Err(CheckError::Format("two upper-case letters (UF)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_good_and_bad_gtins() {
        assert_eq!(gtin("7891000315507"), Ok(()));
        assert_eq!(gtin("7891000315508"), Err(CheckError::CheckDigit));
        assert_eq!(gtin("96385074"), Ok(()));
        assert!(matches!(gtin("78910003155"), Err(CheckError::Format(_))));
        assert!(matches!(gtin("789100031550a"), Err(CheckError::Format(_))));
    }

    #[test]
    fn known_good_and_bad_cpfs_and_cnpjs() {
        assert_eq!(cpf("52998224725"), Ok(()));
        assert_eq!(cpf("52998224724"), Err(CheckError::CheckDigit));
        assert_eq!(cpf("11111111111"), Err(CheckError::CheckDigit));
        assert_eq!(cnpj("11222333000181"), Ok(()));
        assert_eq!(cnpj("11222333000182"), Err(CheckError::CheckDigit));
        assert_eq!(cpf_or_cnpj("11222333000181"), Ok(()));
        assert!(cpf_or_cnpj("123").is_err());
    }

    #[test]
    fn ncm_and_uf() {
        assert_eq!(ncm("22021000"), Ok(()));
        assert!(ncm("2202100").is_err());
        assert_eq!(uf("SP"), Ok(()));
        assert!(uf("sp").is_err());
    }

    proptest::proptest! {
        #[test]
        fn generated_check_digits_validate(body in proptest::array::uniform12(0u8..10)) {
            let mut s: String = body.iter().map(|d| char::from(b'0' + d)).collect();
            s.push(char::from(b'0' + gtin_check_digit(&body)));
            proptest::prop_assert_eq!(gtin(&s), Ok(()));
            let [a, b] = cnpj_check_digits(&body);
            let mut c: String = body.iter().map(|d| char::from(b'0' + d)).collect();
            c.push(char::from(b'0' + a));
            c.push(char::from(b'0' + b));
            if !body.iter().all(|x| *x == body[0]) || a != body[0] || b != body[0] {
                proptest::prop_assert_eq!(cnpj(&c), Ok(()));
            }
        }
    }
}
