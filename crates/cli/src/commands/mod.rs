pub mod ask;
pub mod bench;
pub mod generate;
pub mod init;
pub mod logits;
pub mod quickstart;
