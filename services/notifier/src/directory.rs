//! The contact directory: names (aliases) and channels the care plans do not
//! carry — the patient's own, and the responsible clinician's. It is the
//! institution's off-chain data, read from a JSON file:
//!
//! ```json
//! { "<participant id>": { "name": "Sam", "channels": [ { "kind": "email", "address": "sam@example.org" } ] } }
//! ```

use glucochain_types::ParticipantId;
use glucochain_types::tx::ContactChannel;
use std::collections::HashMap;

/// One person in the directory.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Display name or alias.
    #[serde(default)]
    pub name: Option<String>,
    /// Channels.
    #[serde(default)]
    pub channels: Vec<ContactChannel>,
}

/// The directory.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    entries: HashMap<ParticipantId, Entry>,
}

impl Directory {
    /// Reads the JSON file.
    pub fn read_file(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Parses the JSON text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: HashMap<String, Entry> = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut entries = HashMap::new();
        for (id, e) in raw {
            let id = ParticipantId::parse(&id).map_err(|e| format!("participant {id}: {e}"))?;
            entries.insert(id, e);
        }
        Ok(Directory { entries })
    }

    /// The person's name, if known.
    pub fn name(&self, id: &ParticipantId) -> Option<String> {
        self.entries.get(id).and_then(|e| e.name.clone())
    }

    /// The person's channels, if any.
    pub fn channels(&self, id: &ParticipantId) -> Option<Vec<ContactChannel>> {
        self.entries.get(id).map(|e| e.channels.clone()).filter(|c| !c.is_empty())
    }
}
