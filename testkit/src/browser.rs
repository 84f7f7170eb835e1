//! A scripted browser over plain HTTP: a cookie jar per origin, redirects followed by
//! hand (so every hop can be inspected), and the IdP's dev login form filled in.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use reqwest::header::HeaderMap;
use url::Url;

use crate::client;

/// One response.
#[derive(Debug)]
pub struct Page {
    /// Where it came from.
    pub url: Url,
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body text.
    pub body: String,
}

impl Page {
    /// Every `set-cookie` value.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_owned())
            .collect()
    }
    /// The `location` header resolved against the page URL.
    pub fn location(&self) -> Option<Url> {
        let l = self.headers.get("location")?.to_str().ok()?;
        self.url.join(l).ok()
    }
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }
}

/// The browser.
pub struct Browser {
    http: reqwest::Client,
    jar: Mutex<HashMap<String, BTreeMap<String, String>>>,
    /// Extra headers sent with every request (e.g. `x-request-id`).
    pub extra: Vec<(String, String)>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

fn origin(u: &Url) -> String {
    u.origin().ascii_serialization()
}

/// The first `<form>` of a page: its absolute action and its hidden fields.
pub fn first_form(page: &Page) -> Option<(Url, Vec<(String, String)>)> {
    let body = &page.body;
    let start = body.find("<form")?;
    let end = body[start..].find("</form>")? + start;
    let form = &body[start..end];
    let attr = |tag: &str, name: &str| -> Option<String> {
        let key = format!("{name}=\"");
        let i = tag.find(&key)? + key.len();
        Some(tag[i..i + tag[i..].find('"')?].replace("&amp;", "&"))
    };
    let action = page.url.join(&attr(form, "action")?).ok()?;
    let mut fields = Vec::new();
    for input in form.split("<input").skip(1) {
        let tag = &input[..input.find('>').unwrap_or(input.len())];
        if tag.contains("type=\"hidden\"") {
            if let (Some(n), Some(v)) = (attr(tag, "name"), attr(tag, "value")) {
                fields.push((n, v));
            }
        }
    }
    Some((action, fields))
}

impl Browser {
    /// A browser with an empty jar.
    pub fn new() -> Self {
        Self {
            http: client(),
            jar: Mutex::new(HashMap::new()),
            extra: Vec::new(),
        }
    }

    /// The jar's cookie `name` for the origin of `url`.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let u = Url::parse(url).ok()?;
        self.jar
            .lock()
            .ok()?
            .get(&origin(&u))
            .and_then(|c| c.get(name).cloned())
    }

    /// Puts a cookie in the jar (for tampering tests).
    pub fn set_cookie(&self, url: &str, name: &str, value: &str) {
        let u = Url::parse(url).expect("url");
        if let Ok(mut jar) = self.jar.lock() {
            jar.entry(origin(&u))
                .or_default()
                .insert(name.to_owned(), value.to_owned());
        }
    }

    fn absorb(&self, url: &Url, headers: &HeaderMap) {
        let Ok(mut jar) = self.jar.lock() else { return };
        let cookies = jar.entry(origin(url)).or_default();
        for v in headers.get_all("set-cookie") {
            let Ok(v) = v.to_str() else { continue };
            let Some((name, value)) = v.split(';').next().and_then(|nv| nv.split_once('=')) else {
                continue;
            };
            if v.contains("Max-Age=0") || value.is_empty() {
                cookies.remove(name.trim());
            } else {
                cookies.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    /// One request (no redirect following), sending the jar's cookies.
    pub async fn request(
        &self,
        method: &str,
        url: &Url,
        form: Option<&[(String, String)]>,
        headers: &[(&str, &str)],
    ) -> Page {
        let mut req = self
            .http
            .request(method.parse().expect("method"), url.clone())
            .header("accept", "text/html,*/*;q=0.8");
        let cookie = self.jar.lock().ok().and_then(|j| {
            j.get(&origin(url))
                .filter(|c| !c.is_empty())
                .map(|c| c.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; "))
        });
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        for (k, v) in &self.extra {
            req = req.header(k.as_str(), v.as_str());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(f) = form {
            req = req.form(f);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        self.absorb(url, &headers);
        let body = resp.text().await.unwrap_or_default();
        Page {
            url: url.clone(),
            status,
            headers,
            body,
        }
    }

    /// GET, following redirects (up to 20); returns every page in order.
    pub async fn navigate(&self, url: &str) -> Vec<Page> {
        self.walk(Url::parse(url).expect("url"), None).await
    }

    async fn walk(&self, mut url: Url, user: Option<&str>) -> Vec<Page> {
        let mut pages = Vec::new();
        let mut form: Option<Vec<(String, String)>> = None;
        for _ in 0..20 {
            let page = match form.take() {
                Some(f) => self.request("POST", &url, Some(&f), &[]).await,
                None => self.request("GET", &url, None, &[]).await,
            };
            let next = page.location().filter(|_| matches!(page.status, 301 | 302 | 303 | 307));
            let login_form = (page.status == 200 && page.body.contains("name=\"login\""))
                .then(|| first_form(&page))
                .flatten();
            pages.push(page);
            if let Some(n) = next {
                url = n;
                continue;
            }
            match (login_form, user) {
                (Some((action, mut fields)), Some(user)) => {
                    fields.push(("login".into(), user.into()));
                    fields.push(("password".into(), "any".into()));
                    url = action;
                    form = Some(fields);
                }
                _ => break,
            }
        }
        pages
    }

    /// Navigates to `url` and logs in at the IdP as `user`; returns every page.
    pub async fn login(&self, url: &str, user: &str) -> Vec<Page> {
        self.walk(Url::parse(url).expect("url"), Some(user)).await
    }
}
