//! Keyset pagination: a page of a list read on a key, and where the next one starts.

#[derive(Clone, Debug, Default)]
pub struct PageRequest {
    pub limit: u32,
    /// The id of the last item of the previous page.
    pub after: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// Keyset pagination: `rows` holds up to `limit + 1` items after the cursor; the extra one only
    /// tells that there is a next page, whose cursor is the id of this page's last item.
    pub fn of(mut rows: Vec<T>, limit: u32, id_of: impl Fn(&T) -> String) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more { rows.last().map(id_of) } else { None };
        Self { items: rows, next }
    }
}
