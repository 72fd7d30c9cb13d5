//! The AWS shared config files (`~/.aws/credentials`, `~/.aws/config`):
//! the profile named by `AWS_PROFILE` (else `default`) fills what the
//! environment leaves unset: keys, session token, region and endpoint.
//! `object_store` reads the environment, web identity tokens, container
//! and instance credentials itself, but not these files.

use std::collections::HashMap;
use std::path::PathBuf;

/// Settings of one profile, keyed as in the files (`aws_access_key_id`,
/// `region`, `endpoint_url`, …), lower case.
pub type Profile = HashMap<String, String>;

/// The profile `AWS_PROFILE` names (else `default`), merged from
/// `AWS_SHARED_CREDENTIALS_FILE` (else `~/.aws/credentials`) and
/// `AWS_CONFIG_FILE` (else `~/.aws/config`); the credentials file wins.
/// Empty when neither file has it. `env` stands in for `std::env::var`.
pub fn load(env: impl Fn(&str) -> Option<String>) -> Profile {
    let name = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let home = dirs::home_dir().unwrap_or_default();
    let file = |var: &str, default: &str| {
        env(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".aws").join(default))
    };
    let mut out = Profile::new();
    // The config file names a profile `[profile NAME]` (`[default]` too).
    if let Ok(text) = std::fs::read_to_string(file("AWS_CONFIG_FILE", "config")) {
        let section = if name == "default" {
            "default".to_string()
        } else {
            format!("profile {name}")
        };
        out.extend(section_of(&text, &section));
    }
    if let Ok(text) = std::fs::read_to_string(file("AWS_SHARED_CREDENTIALS_FILE", "credentials")) {
        out.extend(section_of(&text, &name));
    }
    out
}

/// The `key = value` pairs of section `[name]` of an INI text. Nested
/// (indented) settings such as `s3 =` sub-sections are skipped.
fn section_of(text: &str, name: &str) -> Profile {
    let mut out = Profile::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = header.trim() == name;
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                if !v.trim().is_empty() {
                    out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_named_profile_merges_config_and_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        let config = dir.path().join("config");
        std::fs::write(
            &creds,
            "[default]\naws_access_key_id = D\n\n[lab]\naws_access_key_id=K\naws_secret_access_key = S \n",
        )
        .unwrap();
        std::fs::write(
            &config,
            "[default]\nregion = eu-west-1\n[profile lab]\nregion = us-east-2\nendpoint_url = http://127.0.0.1:9000\ns3 =\n  addressing_style = path\n",
        )
        .unwrap();
        let vars: HashMap<&str, String> = [
            ("AWS_PROFILE", "lab".to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", creds.display().to_string()),
            ("AWS_CONFIG_FILE", config.display().to_string()),
        ]
        .into();
        let p = load(|k| vars.get(k).cloned());
        assert_eq!(p["aws_access_key_id"], "K");
        assert_eq!(p["aws_secret_access_key"], "S");
        assert_eq!(p["region"], "us-east-2");
        assert_eq!(p["endpoint_url"], "http://127.0.0.1:9000");
        assert!(!p.contains_key("addressing_style"));
        let d = load(|k| match k {
            "AWS_PROFILE" => None,
            _ => vars.get(k).cloned(),
        });
        assert_eq!(
            (d["aws_access_key_id"].as_str(), d["region"].as_str()),
            ("D", "eu-west-1")
        );
    }
}
