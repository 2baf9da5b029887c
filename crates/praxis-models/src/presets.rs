//! Provider presets: OpenAI-compatible servers known by name (`huggingface:MODEL`,
//! `lmstudio:MODEL`, `vllm:MODEL`, `llamacpp:MODEL`). Each preset says where its server is
//! (a fixed default or a variable that must be set) and which variable holds its key, if
//! any. This table is the one place they are defined: [`crate::provider_from_spec`] builds
//! them and `praxis doctor` lists them.

use crate::{ModelError, OpenAiProvider, ProviderSettings};

/// Where a preset's server is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresetUrl {
    /// `default` unless `variable` is set.
    Default {
        variable: &'static str,
        default: &'static str,
    },
    /// `variable` must be set (there is no sensible default host).
    Required {
        variable: &'static str,
        example: &'static str,
    },
}

impl PresetUrl {
    /// The variable that sets the base URL.
    pub fn variable(&self) -> &'static str {
        match self {
            PresetUrl::Default { variable, .. } | PresetUrl::Required { variable, .. } => variable,
        }
    }
}

/// How a preset authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresetKey {
    /// The server wants no key; no `authorization` header is sent.
    None,
    /// A bearer key from this variable, required.
    Required(&'static str),
    /// A bearer key from this variable when it is set (e.g. `vllm serve --api-key`).
    Optional(&'static str),
}

/// An OpenAI-compatible server known by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    /// The spec prefix, e.g. `huggingface` in `huggingface:MODEL`.
    pub name: &'static str,
    /// Base URL including `/v1` (requests go to `{base}/chat/completions`).
    pub url: PresetUrl,
    pub key: PresetKey,
    /// A spec to show in messages, e.g. `vllm:Qwen/Qwen2.5-7B-Instruct`.
    pub example: &'static str,
}

/// Every preset.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "huggingface",
        url: PresetUrl::Default {
            variable: "HF_BASE_URL",
            default: "https://router.huggingface.co/v1",
        },
        key: PresetKey::Required("HF_TOKEN"),
        example: "huggingface:meta-llama/Llama-3.1-8B-Instruct",
    },
    Preset {
        name: "lmstudio",
        url: PresetUrl::Default {
            variable: "LMSTUDIO_BASE_URL",
            default: "http://localhost:1234/v1",
        },
        key: PresetKey::None,
        example: "lmstudio:qwen2.5-7b-instruct",
    },
    Preset {
        name: "vllm",
        url: PresetUrl::Required {
            variable: "VLLM_BASE_URL",
            example: "http://localhost:8000/v1",
        },
        key: PresetKey::Optional("VLLM_API_KEY"),
        example: "vllm:Qwen/Qwen2.5-7B-Instruct",
    },
    Preset {
        name: "llamacpp",
        url: PresetUrl::Required {
            variable: "LLAMACPP_BASE_URL",
            example: "http://localhost:8080/v1",
        },
        key: PresetKey::Optional("LLAMACPP_API_KEY"),
        example: "llamacpp:qwen2.5-coder-7b",
    },
];

/// The preset called `name`, if there is one.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// Every variable the presets read (base URLs and keys).
pub fn preset_variables() -> impl Iterator<Item = &'static str> {
    PRESETS.iter().flat_map(|p| {
        let key = match p.key {
            PresetKey::None => None,
            PresetKey::Required(v) | PresetKey::Optional(v) => Some(v),
        };
        std::iter::once(p.url.variable()).chain(key)
    })
}

impl Preset {
    /// The base URL from `settings.preset_vars`, or the error naming the variable to set.
    pub fn base_url(&self, settings: &ProviderSettings) -> Result<String, ModelError> {
        let var = |name: &str| settings.preset_vars.get(name).cloned();
        match self.url {
            PresetUrl::Default { variable, default } => {
                Ok(var(variable).unwrap_or_else(|| default.to_string()))
            }
            PresetUrl::Required { variable, example } => {
                var(variable).ok_or(ModelError::MissingBaseUrl {
                    provider: self.name,
                    variable,
                    example,
                })
            }
        }
    }

    /// A provider for `model` on this preset's server.
    pub fn provider(
        &self,
        model: &str,
        settings: &ProviderSettings,
    ) -> Result<OpenAiProvider, ModelError> {
        let base = self.base_url(settings)?;
        let base = base.trim().trim_end_matches('/');
        let key = |variable: &str| settings.preset_vars.get(variable).cloned();
        let (api_key, key_variable) = match self.key {
            PresetKey::None => (None, self.url.variable()),
            PresetKey::Optional(variable) => (key(variable), variable),
            PresetKey::Required(variable) => match key(variable) {
                Some(k) => (Some(k), variable),
                None => {
                    return Err(ModelError::MissingKey {
                        provider: self.name.into(),
                        variable,
                        url: format!("{base}/chat/completions"),
                    });
                }
            },
        };
        OpenAiProvider::compatible(
            self.name,
            self.url.variable(),
            base,
            api_key,
            key_variable,
            model,
            settings,
        )
    }

    /// One line for listings: the spec, where the server is and which variables are set.
    pub fn describe(&self, settings: &ProviderSettings) -> String {
        let set = |v: &str| match settings.preset_vars.contains_key(v) {
            true => format!("{v} set"),
            false => format!("{v} unset"),
        };
        let url = match self.url {
            PresetUrl::Default { variable, default } => match settings.preset_vars.get(variable) {
                Some(url) => format!("{url} ({variable})"),
                None => default.to_string(),
            },
            PresetUrl::Required { variable, .. } => set(variable),
        };
        let key = match self.key {
            PresetKey::None => "no key".to_string(),
            PresetKey::Required(v) => set(v),
            PresetKey::Optional(v) => format!("{} (optional)", set(v)),
        };
        format!("{}:MODEL at {url}, {key}", self.name)
    }
}
