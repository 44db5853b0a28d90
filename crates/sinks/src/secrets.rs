//! Reading secrets. A password may come only from an environment variable or a file (named in
//! the config as `*_env` / `*_file`): never the command line (visible in `ps` to every user)
//! nor the config text (copied into tickets and repositories).

use netvantage_config::agent::Secret;

/// Reads the value. A trailing newline in a file is not part of the secret.
pub fn resolve(secret: &Secret) -> Result<String, String> {
    match secret {
        Secret::Literal(value) => Ok(value.clone()),
        Secret::Env(var) => {
            std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))
        }
        Secret::File(path) => std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|e| format!("cannot read {}: {e}", path.display())),
    }
}

pub use netvantage_config::agent::{SECRET_PROPERTIES, is_secret_property};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_lose_their_trailing_newline_and_missing_variables_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(resolve(&Secret::File(path)).unwrap(), "s3cret");
        let err = resolve(&Secret::Env("NV_TEST_SURELY_UNSET_VARIABLE".into())).unwrap_err();
        assert!(err.contains("NV_TEST_SURELY_UNSET_VARIABLE"), "{err}");
    }

    #[test]
    fn password_properties_are_recognised() {
        assert!(is_secret_property("sasl.password"));
        assert!(is_secret_property(" SSL.KEY.PASSWORD "));
        assert!(is_secret_property("ssl.truststore.password"));
        assert!(!is_secret_property("linger.ms"));
    }
}
