//! The tools of this installation: the built-ins plus the manifest tools the home
//! configuration and `PRAXIS_TOOL_MANIFEST_DIRS` name. One function, so `praxis run`,
//! `praxis serve`, `praxis tools`, replay and what-if all see the same registry.

use crate::config::{self, ConfigError};
use crate::home::DataHome;
use praxis_tools::Registry;
use praxis_tools::manifest::{self, MANIFEST_DIRS_ENV, ManifestError};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ToolSetError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Registry(#[from] praxis_tools::RegistryError),
}

/// The manifest directories in force: `[tools] manifest_dirs` of the home `praxis.toml`
/// (relative ones from the data dir), then `PRAXIS_TOOL_MANIFEST_DIRS`. A workspace file
/// cannot add any (see [`config::load`]).
pub fn manifest_dirs(
    home: &DataHome,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<PathBuf>, ConfigError> {
    let layered = config::load(home, None, &[], env)?;
    let configured: Vec<PathBuf> = layered
        .config
        .tools
        .manifest_dirs
        .iter()
        .map(|dir| home.root().join(dir))
        .collect();
    Ok(manifest::manifest_dirs(
        &configured,
        env(MANIFEST_DIRS_ENV).as_deref(),
    ))
}

/// The built-in tools and every manifest tool. A malformed manifest refuses the start,
/// naming its file and field.
pub fn registry(
    home: &DataHome,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Registry, ToolSetError> {
    let manifests = manifest::load_dirs(&manifest_dirs(home, env)?)?;
    Ok(Registry::with_manifests(manifests)?)
}

/// [`registry`] with this process's environment.
pub fn registry_from_env(home: &DataHome) -> Result<Registry, ToolSetError> {
    registry(home, &|k| std::env::var(k).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOOL: &str = "name = \"hello\"\ndescription = \"d\"\neffect = \"read\"\n\
                        command = [\"echo\", \"hi\"]\n[args]\ntype = \"object\"\n";

    #[test]
    fn home_dirs_then_env_dirs_and_never_a_workspace_file() {
        let home_dir = tempfile::tempdir().unwrap();
        let home = DataHome::at(home_dir.path());
        let from_home = home_dir.path().join("tools");
        std::fs::create_dir(&from_home).unwrap();
        std::fs::write(from_home.join("hello.toml"), TOOL).unwrap();
        std::fs::write(
            home_dir.path().join("praxis.toml"),
            "[tools]\nmanifest_dirs = [\"tools\"]\n",
        )
        .unwrap();
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("bye.toml"), TOOL.replace("hello", "bye")).unwrap();
        let value = other.path().display().to_string();
        let env = move |k: &str| (k == MANIFEST_DIRS_ENV).then(|| value.clone());
        assert_eq!(
            manifest_dirs(&home, &env).unwrap(),
            vec![from_home.clone(), other.path().to_path_buf()]
        );
        let names = registry(&home, &env).unwrap().names();
        assert!(names.contains(&"hello".to_string()), "{names:?}");
        assert!(names.contains(&"bye".to_string()), "{names:?}");

        // A workspace praxis.toml declaring tools is ignored, with a warning naming it.
        let ws = tempfile::tempdir().unwrap();
        std::fs::write(
            ws.path().join("praxis.toml"),
            format!("[tools]\nmanifest_dirs = [\"{}\"]\n", ws.path().display()),
        )
        .unwrap();
        let layered = config::load(&home, Some(ws.path()), &[], &|_| None).unwrap();
        assert_eq!(
            layered.config.tools.manifest_dirs,
            vec![PathBuf::from("tools")]
        );
        assert!(
            layered
                .warnings
                .iter()
                .any(|w| w.starts_with("ignored [tools] in")),
            "{:?}",
            layered.warnings
        );

        // A malformed manifest refuses the whole set, naming the file.
        std::fs::write(from_home.join("broken.toml"), "name = \"x\"").unwrap();
        let error = registry(&home, &|_| None).unwrap_err().to_string();
        assert!(
            error.contains(&from_home.join("broken.toml").display().to_string()),
            "{error}"
        );
    }
}
