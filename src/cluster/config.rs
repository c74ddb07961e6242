//! `cluster.toml`: the cluster's shared cookie, its partition count, storage and entity settings,
//! and each node (name, cluster address, HTTP address, data directory). Every field is checked
//! when the file is read; a bad file is a one-line error naming the field, never a panic.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::NodeId;
use crate::limits::{ENTITY_IDLE_MS, LIVE_ENTITIES_MAX, PARTITIONS_DEFAULT, PARTITIONS_MAX, SLED_CACHE_BYTES};
use crate::persistence::Durability;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file is not valid TOML or has unknown/mistyped fields.
    #[error("invalid config {where_}: {message}")]
    Parse {
        /// `file:line:column` (or `line L, column C` for text without a file).
        where_: String,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid config{}: {field}: {reason}", .where_.as_ref().map(|w| format!(" {w}")).unwrap_or_default())]
    Invalid {
        /// The field.
        field: String,
        /// Why.
        reason: String,
        /// `file:line` where the field is, when known.
        where_: Option<String>,
    },
}

/// Line and column (from 1) of byte offset `at` in `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The line (from 1) where `field` (`a.b`: key `b`) is set in `text`, if it is.
fn field_line(text: &str, field: &str) -> Option<usize> {
    let key = field.rsplit('.').next()?;
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('=')) || l == format!("[{field}]")
        })
        .map(|i| i + 1)
}

impl ConfigError {
    /// The error located in `file` (whose text is `text`).
    fn in_file(self, file: &Path, text: &str) -> ConfigError {
        let f = file.display();
        match self {
            ConfigError::Parse { where_, message } => ConfigError::Parse {
                where_: format!("{f}:{}", where_.replace("line ", "").replace(", column ", ":")),
                message,
            },
            ConfigError::Invalid { field, reason, .. } => {
                let where_ = Some(match field_line(text, &field) {
                    Some(line) => format!("{f}:{line}"),
                    None => f.to_string(),
                });
                ConfigError::Invalid { field, reason, where_ }
            }
            other => other,
        }
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field: field.into(), reason: reason.into(), where_: None }
}

/// Storage settings (`[storage]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `flush` (default; `fsync` is another name of it) or `none`.
    #[serde(default = "default_durability")]
    pub durability: Durability,
    /// sled's page cache, bytes.
    #[serde(default = "default_cache")]
    pub cache_bytes: u64,
}

fn default_durability() -> Durability {
    Durability::Flush
}

fn default_cache() -> u64 {
    SLED_CACHE_BYTES
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { durability: default_durability(), cache_bytes: default_cache() }
    }
}

/// Entity settings (`[entities]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitiesConfig {
    /// Most live entity actors per service.
    #[serde(default = "default_live_max")]
    pub live_max: usize,
    /// Idle time before passivation, ms.
    #[serde(default = "default_idle_ms")]
    pub idle_ms: u64,
}

fn default_live_max() -> usize {
    LIVE_ENTITIES_MAX
}

fn default_idle_ms() -> u64 {
    ENTITY_IDLE_MS
}

impl Default for EntitiesConfig {
    fn default() -> Self {
        Self { live_max: default_live_max(), idle_ms: default_idle_ms() }
    }
}

/// Where notifications go (`[notifications]`); with nothing set they go to the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// The SMTP server, `host:port` (plain SMTP, as a local relay or a development sink offers).
    pub smtp: Option<String>,
    /// The sender address of mail.
    pub smtp_from: Option<String>,
    /// The SMS gateway's URL (`http://…`; it receives JSON `{"to","text"}`).
    pub sms_url: Option<String>,
}

/// The payment system (`[payments]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentsConfig {
    /// Whether the built-in sandbox takes payments (default). Turn it off where a real payment
    /// system is used: its pages then answer 404.
    #[serde(default = "default_sandbox")]
    pub sandbox: bool,
    /// The real payment system's hosted checkout, `{id}` standing for the payment id (needed
    /// when the sandbox is off). It calls `/pay/callback` signed with the payment secret.
    pub checkout_url: Option<String>,
}

fn default_sandbox() -> bool {
    true
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self { sandbox: true, checkout_url: None }
    }
}

/// The HTTP front (`[http]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Proxies in front of the node whose `X-Forwarded-For` is believed (their addresses).
    /// From anyone else the client is the TCP peer, whatever a header says.
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// One node (`[[node]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Its name (unique).
    pub name: NodeId,
    /// Where other nodes reach it (part of the configuration digest).
    pub cluster_addr: SocketAddr,
    /// Where its cluster server binds, when that is not `cluster_addr` (peers reach it through
    /// a NAT, a load balancer or a proxy at `cluster_addr`). Not part of the digest: it is this
    /// node's own business.
    #[serde(default)]
    pub listen_addr: Option<SocketAddr>,
    /// Where its HTTP front listens.
    pub http_addr: SocketAddr,
    /// Its data directory (relative paths are relative to the config file).
    pub data_dir: PathBuf,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Shared secret of the cluster's node handshake.
    pub cookie: String,
    /// Partitions of the key space (a power of two).
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// Storage settings.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Entity settings.
    #[serde(default)]
    pub entities: EntitiesConfig,
    /// Notification channels.
    #[serde(default)]
    pub notifications: NotificationsConfig,
    /// The payment system.
    #[serde(default)]
    pub payments: PaymentsConfig,
    /// The HTTP front.
    #[serde(default)]
    pub http: HttpConfig,
    /// A file holding the token signing key (relative paths are relative to the config file);
    /// `--jwt-secret` or `BAZAAR_JWT_SECRET` take precedence.
    #[serde(default)]
    pub jwt_secret_file: Option<PathBuf>,
    /// The nodes.
    #[serde(rename = "node")]
    pub nodes: Vec<NodeConfig>,
}

/// The digest of what decides ownership and who the peers are: the partition count and every
/// node's name and cluster address (sorted by name), as 32 hex digits (xxh3-128). Two nodes
/// route to each other only with the same digest. Local settings (data directories, storage,
/// entity limits, HTTP addresses) and the cookie (a secret) are not part of it.
pub fn ownership_digest(partitions: u32, nodes: &[(NodeId, Option<SocketAddr>)]) -> String {
    let mut sorted: Vec<&(NodeId, Option<SocketAddr>)> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    let mut text = format!("bazaar-cluster-v1\npartitions={partitions}\n");
    for (name, addr) in sorted {
        let addr = addr.map_or_else(|| "-".to_owned(), |a| a.to_string());
        text.push_str(&format!("node={} {addr}\n", name.as_str()));
    }
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(text.as_bytes()))
}

fn default_partitions() -> u32 {
    PARTITIONS_DEFAULT
}

impl NotificationsConfig {
    /// The SMTP server's host and port.
    pub fn smtp_endpoint(&self) -> Result<Option<(String, u16)>, String> {
        let Some(s) = &self.smtp else { return Ok(None) };
        let (host, port) = s.rsplit_once(':').ok_or("host:port expected")?;
        let port: u16 = port.parse().map_err(|_| "the port must be a number from 1 to 65535")?;
        if host.is_empty() || port == 0 {
            return Err("host:port expected".into());
        }
        Ok(Some((host.to_owned(), port)))
    }
}

impl ClusterConfig {
    /// Reads and checks a config file; relative data directories are resolved against its folder.
    pub fn load(path: &Path) -> Result<ClusterConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read { path: path.display().to_string(), reason: e.to_string() })?;
        let mut cfg = ClusterConfig::parse(&text).map_err(|e| e.in_file(path, &text))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for n in &mut cfg.nodes {
            if n.data_dir.is_relative() {
                n.data_dir = base.join(&n.data_dir);
            }
        }
        if let Some(f) = cfg.jwt_secret_file.as_mut().filter(|f| f.is_relative()) {
            *f = base.join(&*f);
        }
        Ok(cfg)
    }

    /// Parses and checks config text.
    pub fn parse(text: &str) -> Result<ClusterConfig, ConfigError> {
        let cfg: ClusterConfig = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map_or((1, 1), |r| line_col(text, r.start));
            ConfigError::Parse { where_: format!("line {line}, column {col}"), message: e.message().trim().to_owned() }
        })?;
        cfg.check()?;
        Ok(cfg)
    }

    /// This configuration's ownership digest (see [`ownership_digest`]).
    pub fn digest(&self) -> String {
        let nodes: Vec<(NodeId, Option<SocketAddr>)> =
            self.nodes.iter().map(|n| (n.name.clone(), Some(n.cluster_addr))).collect();
        ownership_digest(self.partitions, &nodes)
    }

    /// The embedded default: one node owning every partition.
    pub fn single(name: NodeId, http_addr: SocketAddr, data_dir: PathBuf) -> ClusterConfig {
        ClusterConfig {
            cookie: "single-node".into(),
            partitions: PARTITIONS_DEFAULT,
            storage: StorageConfig::default(),
            entities: EntitiesConfig::default(),
            notifications: NotificationsConfig::default(),
            payments: PaymentsConfig::default(),
            http: HttpConfig::default(),
            jwt_secret_file: None,
            nodes: vec![NodeConfig {
                name,
                cluster_addr: SocketAddr::from(([127, 0, 0, 1], 7400)),
                listen_addr: None,
                http_addr,
                data_dir,
            }],
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.cookie.trim().is_empty() {
            return Err(invalid("cookie", "must not be empty"));
        }
        if !self.partitions.is_power_of_two() || self.partitions > PARTITIONS_MAX {
            return Err(invalid("partitions", format!("a power of two from 1 to {PARTITIONS_MAX}")));
        }
        if self.nodes.is_empty() {
            return Err(invalid("node", "at least one [[node]] is needed"));
        }
        for (i, a) in self.nodes.iter().enumerate() {
            for b in &self.nodes[i + 1..] {
                if a.name == b.name {
                    return Err(invalid("node.name", format!("{} appears twice", a.name)));
                }
                if a.cluster_addr == b.cluster_addr || a.http_addr == b.http_addr {
                    return Err(invalid("node", format!("{} and {} share an address", a.name, b.name)));
                }
                if a.data_dir == b.data_dir {
                    return Err(invalid("node.data_dir", format!("{} and {} share a data directory", a.name, b.name)));
                }
            }
        }
        if self.entities.live_max == 0 {
            return Err(invalid("entities.live_max", "must be at least 1"));
        }
        if self.storage.cache_bytes < 1024 * 1024 {
            return Err(invalid("storage.cache_bytes", "at least 1 MiB"));
        }
        if let Some(smtp) = &self.notifications.smtp {
            self.notifications.smtp_endpoint().map_err(|r| invalid("notifications.smtp", format!("{smtp:?}: {r}")))?;
            let from = self.notifications.smtp_from.as_deref().unwrap_or_default();
            if crate::domain::CustomerId::parse(from).is_err() {
                return Err(invalid("notifications.smtp_from", "an e-mail address is needed with smtp"));
            }
        }
        match (&self.payments.checkout_url, self.payments.sandbox) {
            (None, false) => {
                return Err(invalid(
                    "payments.checkout_url",
                    "needed when the sandbox is off (payments.sandbox = false)",
                ))
            }
            (Some(url), _) if !(url.starts_with("https://") || url.starts_with("http://")) || !url.contains("{id}") => {
                return Err(invalid("payments.checkout_url", "an http(s) URL with {id} where the payment id goes"));
            }
            _ => {}
        }
        if let Some(url) = &self.notifications.sms_url {
            if !url.starts_with("http://") || url.len() <= "http://".len() {
                return Err(invalid("notifications.sms_url", "an http:// URL"));
            }
        }
        Ok(())
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.name.as_str() == name)
    }

    /// Every node's name.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_cluster_toml_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster.toml");
        let cfg = ClusterConfig::load(&path).unwrap();
        assert_eq!(cfg.nodes.len(), 1);
        assert_eq!(cfg.storage.durability, Durability::Flush);
        let three = ClusterConfig::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster-3.toml")).unwrap();
        assert_eq!(three.nodes.len(), 3, "the README's three-node example");
    }

    const TWO: &str = r#"
cookie = "c"
[[node]]
name = "node-1"
cluster_addr = "127.0.0.1:7401"
http_addr = "127.0.0.1:8081"
data_dir = "d1"
[[node]]
name = "node-2"
cluster_addr = "127.0.0.1:7402"
http_addr = "127.0.0.1:8082"
data_dir = "d2"
"#;

    #[test]
    fn the_digest_covers_ownership_and_peers_only() {
        let a = ClusterConfig::parse(TWO).unwrap();
        // Pinned (computed independently with Python's xxhash): a change here makes upgraded
        // nodes refuse their peers.
        assert_eq!(a.digest(), "5a573f050c1b36f72de5820e362d4a0a");
        let golden = ownership_digest(
            256,
            &[
                (NodeId::parse("node-1").unwrap(), Some("127.0.0.1:7401".parse().unwrap())),
                (NodeId::parse("node-2").unwrap(), Some("127.0.0.1:7402".parse().unwrap())),
            ],
        );
        assert_eq!(a.digest(), golden);
        assert_eq!(golden.len(), 32);
        // Order of the nodes in the file, local settings, HTTP addresses and the cookie: same digest.
        let reordered =
            TWO.replacen("node-1", "node-x", 1).replacen("node-2", "node-1", 1).replacen("node-x", "node-2", 1);
        let local = TWO
            .replace("\"d1\"", "\"elsewhere\"")
            .replace("8082", "9092")
            .replace("cookie = \"c\"", "cookie = \"other\"")
            .replace("data_dir = \"elsewhere\"", "data_dir = \"elsewhere\"\nlisten_addr = \"0.0.0.0:7401\"");
        assert!(ClusterConfig::parse(&local).unwrap().nodes[0].listen_addr.is_some());
        assert_eq!(ClusterConfig::parse(&local).unwrap().digest(), golden);
        // Ownership or peers changed: another digest.
        assert_ne!(ClusterConfig::parse(&reordered).unwrap().digest(), golden, "names swapped between addresses");
        let more = format!("partitions = 512\n{TWO}");
        assert_ne!(ClusterConfig::parse(&more).unwrap().digest(), golden);
        let moved = TWO.replace("7402", "7403");
        assert_ne!(ClusterConfig::parse(&moved).unwrap().digest(), golden);
        let three = format!("{TWO}[[node]]\nname = \"node-3\"\ncluster_addr = \"127.0.0.1:7404\"\nhttp_addr = \"127.0.0.1:8083\"\ndata_dir = \"d3\"\n");
        assert_ne!(ClusterConfig::parse(&three).unwrap().digest(), golden);
    }

    #[test]
    fn a_relative_jwt_secret_file_is_found_beside_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cluster.toml");
        std::fs::write(&file, format!("jwt_secret_file = \"keys/jwt.key\"\n{TWO}")).unwrap();
        let cfg = ClusterConfig::load(&file).unwrap();
        assert_eq!(cfg.jwt_secret_file, Some(dir.path().join("keys/jwt.key")));
        assert_eq!(ClusterConfig::parse(TWO).unwrap().jwt_secret_file, None);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let base = r#"
cookie = "c"
[[node]]
name = "a"
cluster_addr = "127.0.0.1:7400"
http_addr = "127.0.0.1:8080"
data_dir = "./data"
"#;
        assert!(ClusterConfig::parse(base).is_ok());
        let e = ClusterConfig::parse(&base.replace("cookie = \"c\"", "cookie = \"c\"\npartitions = 100")).unwrap_err();
        assert!(e.to_string().contains("partitions"), "{e}");
        // `fsync` is an older name of `flush`, still read.
        for (name, expected) in [("flush", Durability::Flush), ("fsync", Durability::Flush), ("none", Durability::None)]
        {
            let cfg = ClusterConfig::parse(&format!("{base}\n[storage]\ndurability = \"{name}\"\n")).unwrap();
            assert_eq!(cfg.storage.durability, expected, "{name}");
            assert_eq!(Durability::parse(name), Some(expected), "{name}");
        }
        let e = ClusterConfig::parse(&format!("{base}\n[storage]\ndurability = \"sometimes\"\n")).unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
        assert!(e.to_string().contains("line 10, column 14"), "{e}");
        let e = ClusterConfig::parse(&base.replace("name = \"a\"", "name = \"a b\"")).unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
        assert!(e.to_string().contains("line 4"), "{e}");
        let twice =
            format!("{base}{}", base.replace("cookie = \"c\"", "").replace("7400", "7401").replace("8080", "8081"));
        let e = ClusterConfig::parse(&twice).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        assert!(matches!(ClusterConfig::parse("cookie = \"c\"\nnode = []"), Err(ConfigError::Invalid { .. })));
        assert!(matches!(ClusterConfig::parse("]["), Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn a_bad_file_is_named_with_the_line_of_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.toml");
        let text = "cookie = \"c\"\npartitions = 100\n[[node]]\nname = \"a\"\ncluster_addr = \"127.0.0.1:7400\"\nhttp_addr = \"127.0.0.1:8080\"\ndata_dir = \"d\"\n";
        std::fs::write(&path, text).unwrap();
        let e = ClusterConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains(&format!("{}:2", path.display())) && e.contains("partitions"), "{e}");
        std::fs::write(&path, text.replace("partitions = 100", "cokie = 1")).unwrap();
        let e = ClusterConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains(&format!("{}:2:1", path.display())) && e.contains("cokie"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}
