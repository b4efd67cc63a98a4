// Package config loads deskrelay's single YAML configuration file, applies
// DESKRELAY_* environment overrides and defaults, and reports every problem
// at once with its key path and its line and column in the file.
//
// Config holds plain data. Packages that own a part of it (routing rules,
// connector options) check that part themselves and return [Errors] with
// key paths; [Config.Locate] adds the file positions. Secrets are of type
// [Secret], read from env:NAME or file:PATH references, and never print.
//
// This package imports nothing else of deskrelay.
package config
