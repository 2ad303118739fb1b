//! The exit-code contract (DESIGN.md): decided in one place, `Error::exit()`.

/// Process exit codes users and CI scripts rely on. Never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exit {
    /// Every stage succeeded.
    Success = 0,
    /// A stage failed (a failed deploy that was rolled back is still 1).
    StageFailed = 1,
    /// Usage, manifest or input error.
    Input = 2,
    /// Approval missing, denied or timed out.
    Approval = 3,
    /// The environment lock is held by another run.
    LockHeld = 4,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}
