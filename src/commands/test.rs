//! `test`: the `test:` commands of the affected services, run like `build` (see `build.rs`), with
//! the same outputs (`affected`, `test-failed`).

use crate::cli::BuildArgs;
use crate::context::Ctx;
use crate::error::Result;

pub fn run(ctx: &Ctx, args: &BuildArgs) -> Result<()> {
    super::build::run_stage(ctx, "test", crate::plan::test::plan, args)
}
