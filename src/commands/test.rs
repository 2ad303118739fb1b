//! `test`: the `test:` commands of the affected services, run like `build` (see [`run_stage`]), with
//! the same outputs (`affected`, `test-failed`).

use super::units::run_stage;
use crate::context::Ctx;
use crate::error::Result;
use crate::settings::BuildSettings;

pub fn run(ctx: &Ctx, args: &BuildSettings) -> Result<()> {
    run_stage(ctx, "test", crate::plan::test::plan, args)
}
