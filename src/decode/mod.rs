//! The offline MCP correlator: raw records in, MCP messages out.
