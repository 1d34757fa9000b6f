/// Development only: the message on standard output, where the person trying
/// the stack reads their code.
pub fn print(channel: &str, to: &str, text: &super::Text) {
    println!(
        "\n── {channel} to {to} ──\n{subject}\n{body}\n",
        subject = text.subject,
        body = text.body
    );
}
