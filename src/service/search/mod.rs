//! Server-side search over room events (the spec's Server Side Search module): an
//! inverted index kept in the event write path, and the queries behind `/search`.

mod index;
mod query;
mod terms;

pub use index::{Field, INDEX_VERSION, index_event, index_existing_events, unindex_event};
pub use query::{
    ContextRequest, GroupKey, MAX_QUERY_TERMS, Order, Query, SearchRequest, parse_query,
};
