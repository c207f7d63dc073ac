// The client scenario, driven by ethers v6 against any Ethereum JSON-RPC endpoint.
// Usage: node ethers_scenario.mjs '{"url":..., "privateKey":..., "recipient":..., "artifact":...}'
// Prints one JSON object (see scenario.py for the fields and what the tests assert on them).
import { readFileSync } from "node:fs";
import { ethers } from "ethers";

const args = JSON.parse(process.argv[2]);
const artifact = JSON.parse(readFileSync(args.artifact, "utf8"));
// Polling at 50 ms keeps waits short on nodes with sub-second blocks; without a cache, ethers asks
// for the pending nonce again instead of reusing an answer from the last 250 ms.
const provider = new ethers.JsonRpcProvider(args.url, undefined, { pollingInterval: 50, cacheTimeout: -1 });
const wallet = new ethers.Wallet(args.privateKey, provider);

const chainId = (await provider.getNetwork()).chainId;

const factory = new ethers.ContractFactory(artifact.abi, artifact.bytecode, wallet);
const token = await factory.deploy("Client", "CLT");
const deployReceipt = await token.deploymentTransaction().wait();
const tokenAddress = await token.getAddress();

const ethTransfer = await wallet.sendTransaction({ to: args.recipient, value: args.value });
const ethReceipt = await ethTransfer.wait();

const mintReceipt = await (await token.mintBatch([wallet.address], 1000n)).wait();
const gasEstimate = await token.transfer.estimateGas(args.recipient, 250n);
const transferReceipt = await (await token.transfer(args.recipient, 250n)).wait();

const events = await token.queryFilter(token.filters.Transfer(), deployReceipt.blockNumber, "latest");
const feeHistory = await provider.send("eth_feeHistory", ["0x4", "latest", [25, 75]]);

console.log(JSON.stringify({
  chainId: Number(chainId),
  token: tokenAddress,
  deployStatus: deployReceipt.status,
  ethTransferStatus: ethReceipt.status,
  mintStatus: mintReceipt.status,
  transferStatus: transferReceipt.status,
  transferGasUsed: Number(transferReceipt.gasUsed),
  gasEstimate: Number(gasEstimate),
  receiptLogs: transferReceipt.logs.length,
  recipientWei: (await provider.getBalance(args.recipient)).toString(),
  recipientTokens: (await token.balanceOf(args.recipient)).toString(),
  transfers: events.map((e) => [e.args[0], e.args[1], e.args[2].toString()]),
  feeHistory: {
    blocks: feeHistory.baseFeePerGas.length - 1,
    oldestBlock: Number(feeHistory.oldestBlock),
    rewards: (feeHistory.reward ?? []).length,
  },
}));
