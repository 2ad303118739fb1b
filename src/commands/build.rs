//! `build` (and, through [`run_stage`], `test`): run the affected units' commands locally, one
//! after the other, relaying output with a per-unit prefix; stop at the first failure unless
//! `--keep-going`; end with a table (unit, host, duration, result). In GitHub Actions both write
//! the outputs `affected` (as `plan` does) and `<stage>-failed`. The runner is in `units.rs`.

use super::units::run_stage;
use crate::context::Ctx;
use crate::error::Result;
use crate::settings::BuildSettings;

pub fn run(ctx: &Ctx, args: &BuildSettings) -> Result<()> {
    run_stage(ctx, "build", crate::plan::build::plan, args)
}
