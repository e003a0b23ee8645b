import { render } from "preact";
import { App } from "./app/App";
import { applyTheme, loadTheme } from "./ui/theme";
import "./styles/base.css";
import "./styles/layout.css";
import "./styles/timeline.css";

applyTheme(loadTheme());
const root = document.getElementById("app");
if (root) render(<App />, root);
