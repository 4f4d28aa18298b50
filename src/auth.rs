//! Authentication: [`Authenticator`], [`Principal`] and [`AuthError`].
