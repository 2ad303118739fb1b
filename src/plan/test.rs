//! The `test` stage plan: the `test:` command of each affected service, run locally with `sh -c` in
//! the repository root. Pure.

use super::stages::PlanInput;
use super::{Action, Step, Target};
use crate::cmd::Cmd;

/// The test steps of the affected units, in manifest order.
pub fn plan(input: &PlanInput) -> Vec<Step> {
    let mut steps = Vec::new();
    for unit in &input.affected.units {
        let Some(service) = input.manifest.services.get(unit) else {
            continue;
        };
        let Some(test) = &service.test else {
            continue;
        };
        let cmd = Cmd::shell(test);
        let cmd = match &input.root {
            Some(root) => cmd.cwd(root),
            None => cmd,
        };
        steps.push(Step {
            id: format!("test:{unit}"),
            stage: "test".into(),
            unit: Some(unit.clone()),
            target: Target::Local,
            action: Action::Run { cmd },
            why: "run the service's tests".into(),
            guard: Default::default(),
            origin: Some(service.span),
        });
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::{Affected, Reason};

    #[test]
    fn only_services_with_a_test_command() {
        let m = crate::changes::tests::sample();
        let a = Affected {
            units: vec!["api".into(), "worker".into(), "web".into()],
            base: None,
            head: "h".into(),
            reason: Reason::All,
            changed_files: 0,
            notes: Vec::new(),
        };
        let input = PlanInput {
            manifest: &m,
            env: None,
            affected: &a,
            root: None,
        };
        let steps = plan(&input);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].id, "test:api");
        assert_eq!(steps[0].describe(), "sh -c 'cargo test -p api'");
    }
}
