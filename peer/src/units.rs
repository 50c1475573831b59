//! Byte sizes and rates for people: parsing `256K`, `1M`, `1GiB`, rates such
//! as `10M` or `100mbit`, and printing `1.00 GiB`.

/// Parses a byte count with an optional binary suffix (K, M, G, T, with or
/// without `iB`/`B`; case-insensitive). `1M` is 1,048,576.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (examples: 262144, 256K, 1M)"))?;
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{text:?}: unknown size suffix {suffix:?}")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses a rate into bytes per second: a plain number of bytes per second,
/// a binary byte suffix as in [`parse_size`] (`10M` = 10 MiB/s), or a bit
/// suffix in powers of 1000 (`100mbit` = 100,000,000 bits/s = 12,500,000
/// bytes/s; also `kbit`, `gbit`, `bit`, optionally followed by `/s`).
/// Zero is refused: leave the option out for no limit.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    let without_per_second = lower.strip_suffix("/s").unwrap_or(&lower);
    let rate = if let Some(number) = without_per_second.strip_suffix("bit") {
        let split = number
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(number.len());
        let (digits, prefix) = number.split_at(split);
        let bits: u64 = digits
            .parse()
            .map_err(|_| format!("{trimmed:?} is not a rate (examples: 12500000, 10M, 100mbit)"))?;
        let scale: u64 = match prefix {
            "" => 1,
            "k" => 1_000,
            "m" => 1_000_000,
            "g" => 1_000_000_000,
            _ => return Err(format!("{trimmed:?}: unknown rate unit {prefix:?}bit")),
        };
        bits.checked_mul(scale)
            .ok_or_else(|| format!("{trimmed:?} is too large"))?
            / 8
    } else {
        parse_size(trimmed)
            .map_err(|_| format!("{trimmed:?} is not a rate (examples: 12500000, 10M, 100mbit)"))?
    };
    if rate == 0 {
        return Err(format!(
            "{trimmed:?} is below one byte per second (leave the option out for no limit)"
        ));
    }
    Ok(rate)
}

/// `1536` -> `1.50 KiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("262144"), Ok(262_144));
        assert_eq!(parse_size("256K"), Ok(262_144));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("1X").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn rates_parse_as_bytes_binary_suffixes_or_decimal_bits() {
        assert_eq!(parse_rate("12500000"), Ok(12_500_000));
        assert_eq!(parse_rate("10M"), Ok(10 << 20));
        assert_eq!(parse_rate("1MiB"), Ok(1 << 20));
        assert_eq!(parse_rate("100mbit"), Ok(12_500_000));
        assert_eq!(parse_rate("100Mbit"), Ok(12_500_000));
        assert_eq!(parse_rate("1Gbit/s"), Ok(125_000_000));
        assert_eq!(parse_rate("800kbit"), Ok(100_000));
        assert_eq!(parse_rate("16bit"), Ok(2));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("7bit").is_err());
        assert!(parse_rate("10X").is_err());
        assert!(parse_rate("10tbit").is_err());
        assert!(parse_rate("mbit").is_err());
        assert!(parse_rate("99999999999999gbit").is_err());
        assert!(parse_rate("").is_err());
    }

    #[test]
    fn sizes_print_for_people() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.50 KiB");
        assert_eq!(human_size(1 << 30), "1.00 GiB");
    }
}
