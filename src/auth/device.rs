//! User-agent → the `device` object Rocket.Chat stores with a session
//! (`type`, `name`, `longVersion`, `os {name, version}`, `version`).
//! Best effort: unknown agents still get a well-formed object.

use serde_json::{Value, json};

/// Parse a User-Agent into Rocket.Chat's device shape.
pub fn device_info(user_agent: &str) -> Value {
    let ua = user_agent;
    // Rocket.Chat mobile: "RC Mobile; ios 17.1; v4.46.0 (12345)"
    if let Some(rest) = ua.strip_prefix("RC Mobile;") {
        let mut parts = rest.split(';').map(str::trim);
        let os = parts.next().unwrap_or("");
        let (os_name, os_version) = os.split_once(' ').unwrap_or((os, ""));
        let version = parts
            .next()
            .unwrap_or("")
            .trim_start_matches('v')
            .split(' ')
            .next()
            .unwrap_or("");
        return shape("mobile-app", "Rocket.Chat", version, os_name, os_version);
    }
    let os = os_of(ua);
    if let Some(v) = token_version(ua, "Rocket.Chat/") {
        return shape("desktop-app", "Rocket.Chat", &v, os.0, os.1);
    }
    for (marker, name) in [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Version/", "Safari"),
    ] {
        if let Some(v) = token_version(ua, marker) {
            return shape("browser", name, &v, os.0, os.1);
        }
    }
    if let Some((name, v)) = ua.split_whitespace().next().and_then(|t| t.split_once('/')) {
        return shape("other", name, v, os.0, os.1);
    }
    shape("other", "unknown", "", os.0, os.1)
}

fn shape(kind: &str, name: &str, long_version: &str, os_name: &str, os_version: &str) -> Value {
    let short: Vec<&str> = long_version.split('.').take(3).collect();
    json!({
        "type": kind,
        "name": name,
        "longVersion": long_version,
        "os": {"name": os_name, "version": os_version},
        "version": short.join("."),
    })
}

fn token_version(ua: &str, marker: &str) -> Option<String> {
    let start = ua.find(marker)? + marker.len();
    let version: String = ua[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    Some(version)
}

fn os_of(ua: &str) -> (&'static str, &'static str) {
    if ua.contains("Windows") {
        ("Windows", "")
    } else if ua.contains("Android") {
        ("Android", "")
    } else if ua.contains("iPhone") || ua.contains("iPad") {
        ("iOS", "")
    } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        ("Mac OS", "")
    } else if ua.contains("Linux") {
        ("Linux", "")
    } else {
        ("", "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_agents_are_recognised() {
        let chrome = device_info(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.71 Safari/537.36",
        );
        assert_eq!(chrome["type"], "browser");
        assert_eq!(chrome["name"], "Chrome");
        assert_eq!(chrome["version"], "120.0.6099");
        assert_eq!(chrome["os"]["name"], "Linux");
        let mobile = device_info("RC Mobile; ios 17.1; v4.46.0 (12345)");
        assert_eq!(mobile["type"], "mobile-app");
        assert_eq!(mobile["os"]["version"], "17.1");
        assert_eq!(device_info("curl/8.5.0")["name"], "curl");
        assert_eq!(device_info("")["name"], "unknown");
    }
}
