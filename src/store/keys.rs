//! Key encodings. 0xFF never occurs in UTF-8, so it separates variable-length string
//! parts without ambiguity and keeps all keys of one user together in iteration order.

pub const SEP: u8 = 0xFF;

/// `user_id`
pub fn user(user_id: &str) -> Vec<u8> {
    user_id.as_bytes().to_vec()
}

/// `user_id 0xFF` — the prefix of all of one user's devices.
pub fn devices_of(user_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(user_id.len() + 1);
    key.extend_from_slice(user_id.as_bytes());
    key.push(SEP);
    key
}

/// `user_id 0xFF device_id`
pub fn device(user_id: &str, device_id: &str) -> Vec<u8> {
    let mut key = devices_of(user_id);
    key.extend_from_slice(device_id.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_keys_of_one_user_share_a_prefix_no_other_user_has() {
        // "@a:x" is a prefix of "@a:xy" as a string; the separator keeps their devices apart.
        let prefix = devices_of("@a:x");
        assert!(device("@a:x", "DEV").starts_with(&prefix));
        assert!(!device("@a:xy", "DEV").starts_with(&prefix));
    }
}
