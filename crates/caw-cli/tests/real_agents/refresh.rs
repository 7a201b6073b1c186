//! Refreshes in the container: a good one reaches the host file whole; a
//! refused one's logged-out file must not.
