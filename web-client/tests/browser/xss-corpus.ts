// Hostile markup for xss.test.ts: the categories of OWASP's XSS filter-evasion cheat
// sheet, written afresh, and Matrix-specific ones. In each payload `$JS` is script that
// reports its label if it ever runs, `$URL` an address on a host that must never be
// asked for, and `$L` the payload's label, text that must stay readable.

/** Every request to this host is a payload that got out. */
export const MARKER_HOST = "xss.invalid";

const TEMPLATES: string[] = [
  // Script tags, plain, external, malformed.
  "<script>$JS</script>$L",
  "<SCRIPT SRC=$URL.js></SCRIPT>$L",
  "<<SCRIPT>$JS//<</SCRIPT>$L",
  '<SCRIPT/XSS SRC="$URL.js"></SCRIPT>$L',
  '<IMG """><SCRIPT>$JS</SCRIPT>">$L',
  '"><script>$JS</script>$L',
  "<template><script>$JS</script></template>$L",
  // javascript: URLs, with case, entities, whitespace and control characters.
  '<IMG SRC="javascript:$JS;" alt="$L">',
  "<IMG SRC=JaVaScRiPt:$JS alt=$L>",
  "<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;$JS alt=$L>",
  '<a href="&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;$JS">$L</a>',
  '<a href="&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A$JS">$L</a>',
  '<a href="javascript&#0000058$JS">$L</a>',
  '<a href="jav&#x09;ascript:$JS">$L</a>',
  '<a href="jav&#x0A;ascript:$JS">$L</a>',
  '<a href="jav&#x0D;ascript:$JS">$L</a>',
  '<a href="java\tscript:$JS">$L</a>',
  '<a href=" &#14;  javascript:$JS">$L</a>',
  '<a href="java&NewLine;script&colon;$JS">$L</a>',
  '<a href="JAVASCRIPT:$JS">$L</a>',
  // Other schemes.
  "<a href=\"vbscript:msgbox('$L')\">$L</a>",
  '<a href="data:text/html;base64,PHNjcmlwdD5wYXJlbnQuX194c3MoJ2RhdGEnKTwvc2NyaXB0Pg==">$L</a>',
  '<a href="data:text/html,<script>$JS</script>">$L</a>',
  '<a href="mxc://example.org/abc">$L</a>',
  '<a href="//$HOST/relative">$L</a>',
  // Event handlers on allowed and unknown tags.
  '<img src=x onerror="$JS">$L',
  "<img src=x onerror=&#97;lert('$L') alt=$L>",
  "<img src=\"x:gif\" onerror=\"window['al'+'ert']('$L')\">$L",
  '<p onmouseover="$JS">$L</p>',
  '<body onload="$JS">$L</body>',
  '<a href="https://example.org/" onclick="$JS">$L</a>',
  '<a href="#" onclick="$JS">$L</a>',
  '<details open ontoggle="$JS"><summary>$L</summary>more</details>',
  '<marquee onstart="$JS">$L</marquee>',
  '<video><source onerror="$JS"></video>$L',
  "<audio src=x onerror=$JS></audio>$L",
  "<h1 id=app onfocus=$JS tabindex=1 autofocus>$L</h1>",
  // SVG and MathML.
  '<svg onload="$JS"></svg>$L',
  "<svg><script>$JS</script></svg>$L",
  '<svg><a xlink:href="javascript:$JS"><text x="20" y="20">link</text></a></svg>$L',
  '<svg><animate onbegin="$JS" attributeName="x" dur="1s"></animate></svg>$L',
  "<math><mtext><table><mglyph><style><img src=x onerror=$JS></style></mglyph></table></mtext></math>$L",
  "<svg></p><style><a id=\"</style><img src=1 onerror=$JS>\"></svg>$L",
  // Frames, objects, embeds.
  '<iframe src="javascript:$JS"></iframe>$L',
  '<iframe srcdoc="<script>parent.$JS</script>"></iframe>$L',
  '<iframe src="$URL"></iframe>$L',
  '<object data="javascript:$JS"></object>$L',
  '<object type="text/x-scriptlet" data="$URL"></object>$L',
  '<embed src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9InBhcmVudC5fX3hzcygnZW1iZWQnKSIvPg==">$L',
  // Style, expression, behaviours, imports.
  "<style>@import '$URL.css';</style>$L",
  '<div style="background-image: url($URL)">$L</div>',
  '<div style="width: expression($JS);">$L</div>',
  '<xss style="behavior: url($URL.htc);">$L</xss>',
  '<link rel="stylesheet" href="$URL.css">$L',
  // Meta refresh, base, forms, legacy attributes.
  '<meta http-equiv="refresh" content="0;url=javascript:$JS;">$L',
  '<meta http-equiv="refresh" content="0;url=$URL">$L',
  '<base href="javascript:$JS//">$L',
  '<form action="javascript:$JS"><button>$L</button></form>',
  '<input type="image" src="$URL">$L',
  '<table background="$URL"><tr><td background="javascript:$JS">$L</td></tr></table>',
  '<BGSOUND SRC="javascript:$JS">$L',
  '<img dynsrc="javascript:$JS" lowsrc="$URL" alt="$L">',
  // Mutation XSS through parser differentials.
  '<noscript><p title="</noscript><img src=x onerror=$JS>"></p></noscript>$L',
  "<svg><p><style><img src=x onerror=$JS></style></p></svg>$L",
  // Matrix: attribute breakouts in the spec's own attributes.
  '<font color="#ff0000" onmouseover="$JS">$L</font>',
  "<font color='red\" onmouseover=\"$JS'>$L</font>",
  '<span data-mx-color="#ff0000;background:url($URL)">$L</span>',
  '<span data-mx-bg-color="#00ff00" style="background:url($URL)">$L</span>',
  '<code class="language-js&quot; onmouseover=&quot;$JS">$L</code>',
  '<ol start="1 onmouseover=$JS"><li>$L</li></ol>',
  '<span data-mx-spoiler="<img src=x onerror=$JS>">$L</span>',
  '<div data-mx-maths="<img src=x onerror=$JS>">$L</div>',
  '<a href="https://example.org/" target="_self" rel="opener">$L</a>',
  // Matrix: replies, nested and carrying links.
  '<mx-reply><blockquote><a href="javascript:$JS">In reply to</a><mx-reply><script>$JS</script></mx-reply></blockquote></mx-reply>$L',
  "<mx-reply><mx-reply><mx-reply><img src=x onerror=$JS></mx-reply></mx-reply></mx-reply>$L",
  // Matrix: images by data:, mxc: and http URLs.
  '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9InBhcmVudC5fX3hzcygnaW1nJykiLz4=" alt="$L">',
  '<img src="mxc://example.org/abc" onerror="$JS" alt="$L">',
  '<img src="$URL.png" alt="$L">',
];

export interface Payload {
  /** Unique visible text, e.g. `F07x`: no label is a prefix of another. */
  label: string;
  /** The script a run of this payload would execute. */
  js: string;
  html: string;
}

function fill(template: string, label: string): Payload {
  const js = `__xss('${label}')`;
  const html = template
    .replaceAll("$JS", js)
    .replaceAll("$URL", `http://${MARKER_HOST}/${label}`)
    .replaceAll("$HOST", MARKER_HOST)
    .replaceAll("$L", label);
  return { label, js, html };
}

/** The corpus, each payload with its own label `F00x`, `F01x`, ... */
export const PAYLOADS: Payload[] = TEMPLATES.map((t, i) => fill(t, `F${String(i).padStart(2, "0")}x`));

/** For names, topics, file names and reasons: text that would run if ever parsed as HTML. */
export function hostileText(label: string): string {
  return (
    `${label}<img src=x onerror="__xss('${label}')"><script>__xss('${label}')</script>` +
    `"'><svg onload=__xss('${label}')> & <a href="javascript:__xss('${label}')">${label}</a>`
  );
}
