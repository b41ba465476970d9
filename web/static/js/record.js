// The printable referral record.
document.getElementById("btn-print")?.addEventListener("click", () => window.print());
