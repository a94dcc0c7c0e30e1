//! Inline SVG icons: crisp at any size, no icon font or emoji font needed.

use leptos::prelude::*;

#[derive(Clone, Copy)]
pub enum IconName {
    Edit,
    Trash,
    Copy,
    ThumbUp,
    ThumbDown,
    Retry,
    Theme,
    Attach,
    File,
}

#[component]
pub fn Icon(name: IconName) -> impl IntoView {
    let (d, rotate) = match name {
        IconName::Edit => ("M12 20h9M16.5 3.5a2.1 2.1 0 0 1 3 3L7 19l-4 1 1-4z", false),
        IconName::Trash => ("M3 6h18M8 6V4h8v2M19 6l-1 14H6L5 6M10 11v6M14 11v6", false),
        IconName::Copy => ("M9 9h11v11H9zM5 15H4V4h11v1", false),
        IconName::ThumbUp | IconName::ThumbDown => (
            "M7 10v11H3V10zM7 10l4-8a3 3 0 0 1 3 3v4h5.5a2 2 0 0 1 2 2.3l-1.4 8A2 2 0 0 1 18 21H7",
            matches!(name, IconName::ThumbDown),
        ),
        IconName::Retry => ("M21 12a9 9 0 1 1-3-6.7L21 8M21 3v5h-5", false),
        IconName::Theme => ("M12 3a9 9 0 1 0 0 18zM12 3a9 9 0 0 1 0 18", false),
        IconName::Attach => (
            "M21 11.5l-8.5 8.5a5.5 5.5 0 0 1-7.8-7.8l8.5-8.5a3.7 3.7 0 0 1 5.2 5.2l-8.5 8.5a1.8 1.8 0 0 1-2.6-2.6L15 7",
            false,
        ),
        IconName::File => ("M14 3H6v18h12V7zM14 3v4h4M9 13h6M9 17h6", false),
    };
    view! {
        <svg
            class="i"
            viewBox="0 0 24 24"
            width="16"
            height="16"
            fill="none"
            stroke="currentColor"
            stroke-width="2"
            stroke-linecap="round"
            stroke-linejoin="round"
            aria-hidden="true"
        >
            <path d=d transform=if rotate { "rotate(180 12 12)" } else { "" } />
        </svg>
    }
}
