//! How `peer` fails: one line on stderr and a documented exit code.

use std::process::ExitCode;

/// The exit codes, as `peer --help` prints them.
pub const HELP: &str = "Exit codes:
  0  success
  1  an I/O error (unreadable input, unwritable output, disk full)
  2  wrong usage (bad arguments)
  3  invalid input (a malformed torrent, a bad piece length, no files)
  4  refused: the output exists (use --force)
  5  network: a tracker or server could not be reached, or refused the request
  6  interrupted (Ctrl-C or SIGTERM) before the download completed";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Io = 1,
    InvalidInput = 3,
    Refused = 4,
    Network = 5,
    Interrupted = 6,
}

/// A failed command: what to tell the user, and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl std::fmt::Display) -> Self {
        Failure {
            exit,
            message: message.to_string(),
        }
    }

    pub fn report(self) -> ExitCode {
        eprintln!("peer: error: {}", self.message);
        ExitCode::from(self.exit as u8)
    }
}
