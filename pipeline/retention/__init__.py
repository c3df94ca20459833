"""Retention and destruction (issue 19): the policy (config `retention:`), what a purge as of a
date destroys (plan), the purge with its destruction record (purge), and the commands."""
