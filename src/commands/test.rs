//! `test`: the `test:` commands of the affected services, run like `build` (see [`run_stage`]), with
//! the same outputs (`affected`, `test-failed`).

use super::units::run_stage;
use crate::cli::BuildArgs;
use crate::context::Ctx;
use crate::error::Result;

pub fn run(ctx: &Ctx, args: &BuildArgs) -> Result<()> {
    run_stage(ctx, "test", crate::plan::test::plan, args)
}
