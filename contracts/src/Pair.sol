// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

interface IERC20 {
    function balanceOf(address owner) external view returns (uint256);
    function transfer(address to, uint256 value) external returns (bool);
    function transferFrom(address from, address to, uint256 value) external returns (bool);
}

/// @title Pair
/// @notice A Uniswap-V2-style constant-product pool over two tokens, without LP shares:
///         just enough for swap benchmarks. Swaps pay `amountIn` in, receive
///         `amountOut = amountIn * 997 * reserveOut / (reserveIn * 1000 + amountIn * 997)`
///         (x * y = k after a 0.3% fee).
contract Pair {
    IERC20 public immutable token0;
    IERC20 public immutable token1;

    // Packed in one slot, as in Uniswap V2.
    uint112 private reserve0;
    uint112 private reserve1;
    uint32 private blockTimestampLast;

    event Sync(uint112 reserve0, uint112 reserve1);
    event Swap(
        address indexed sender, uint256 amountIn, uint256 amountOut, bool zeroForOne, address indexed to
    );

    constructor(IERC20 token0_, IERC20 token1_) {
        token0 = token0_;
        token1 = token1_;
    }

    function getReserves() external view returns (uint112, uint112, uint32) {
        return (reserve0, reserve1, blockTimestampLast);
    }

    /// @notice Pulls `amount0` and `amount1` from the caller (who must have approved them).
    function addLiquidity(uint256 amount0, uint256 amount1) external {
        require(token0.transferFrom(msg.sender, address(this), amount0), "Pair: transfer0");
        require(token1.transferFrom(msg.sender, address(this), amount1), "Pair: transfer1");
        sync();
    }

    /// @notice Sets the reserves to the pair's token balances.
    function sync() public {
        _update(token0.balanceOf(address(this)), token1.balanceOf(address(this)));
    }

    function getAmountOut(uint256 amountIn, uint256 reserveIn, uint256 reserveOut)
        public
        pure
        returns (uint256)
    {
        uint256 amountInWithFee = amountIn * 997;
        return (amountInWithFee * reserveOut) / (reserveIn * 1000 + amountInWithFee);
    }

    /// @notice Swaps `amountIn` of token0 for token1 (`zeroForOne`) or the reverse, paying `to`.
    function swap(uint256 amountIn, bool zeroForOne, address to) external returns (uint256 amountOut) {
        require(amountIn > 0, "Pair: zero input");
        (IERC20 tokenIn, IERC20 tokenOut, uint256 reserveIn, uint256 reserveOut) = zeroForOne
            ? (token0, token1, uint256(reserve0), uint256(reserve1))
            : (token1, token0, uint256(reserve1), uint256(reserve0));
        amountOut = getAmountOut(amountIn, reserveIn, reserveOut);
        require(amountOut > 0 && amountOut < reserveOut, "Pair: liquidity");

        require(tokenIn.transferFrom(msg.sender, address(this), amountIn), "Pair: transfer in");
        require(tokenOut.transfer(to, amountOut), "Pair: transfer out");

        // Invariant check in the spirit of Uniswap V2: k must not decrease.
        uint256 newIn = reserveIn + amountIn;
        uint256 newOut = reserveOut - amountOut;
        require(newIn * newOut >= reserveIn * reserveOut, "Pair: K");
        if (zeroForOne) {
            _update(newIn, newOut);
        } else {
            _update(newOut, newIn);
        }
        emit Swap(msg.sender, amountIn, amountOut, zeroForOne, to);
    }

    function _update(uint256 balance0, uint256 balance1) private {
        require(balance0 <= type(uint112).max && balance1 <= type(uint112).max, "Pair: overflow");
        reserve0 = uint112(balance0);
        reserve1 = uint112(balance1);
        blockTimestampLast = uint32(block.timestamp);
        emit Sync(reserve0, reserve1);
    }
}
