//! The one definition of a terminal Mesos task state, shared by the master, the agent,
//! the executor's API and the server (they used to carry copies that disagreed about
//! TASK_UNKNOWN).

use crate::mesos::TaskState;

impl TaskState {
    /// Whether no further update follows for the task: Mesos' own list
    /// (`protobuf::isTerminalState`). `TASK_UNKNOWN` is not terminal (the master does not
    /// know the task; it may be on an agent that has not re-registered), nor are
    /// `TASK_UNREACHABLE` and the states of a task on its way.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::TaskFinished
                | TaskState::TaskFailed
                | TaskState::TaskKilled
                | TaskState::TaskError
                | TaskState::TaskLost
                | TaskState::TaskDropped
                | TaskState::TaskGone
                | TaskState::TaskGoneByOperator
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states_are_mesos_ones() {
        let terminal: Vec<TaskState> = (0..=20)
            .filter_map(|n| TaskState::try_from(n).ok())
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            vec![
                TaskState::TaskFinished,
                TaskState::TaskFailed,
                TaskState::TaskKilled,
                TaskState::TaskLost,
                TaskState::TaskError,
                TaskState::TaskDropped,
                TaskState::TaskGone,
                TaskState::TaskGoneByOperator,
            ]
        );
        for s in [
            TaskState::TaskUnknown,
            TaskState::TaskUnreachable,
            TaskState::TaskStaging,
            TaskState::TaskStarting,
            TaskState::TaskRunning,
            TaskState::TaskKilling,
        ] {
            assert!(!s.is_terminal(), "{s:?}");
        }
    }
}
