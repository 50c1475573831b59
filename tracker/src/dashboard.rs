//! The live dashboard at `/`: one static page that polls `/stats` every
//! second and redraws every swarm (most active first) with a progress bar per
//! peer. Text from peers and torrents is set with `textContent`, never parsed
//! as HTML.

pub const PAGE: &str = include_str!("dashboard.html");
