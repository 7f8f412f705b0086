//! `retz-sim`: discrete-event placement simulation on virtual time.
